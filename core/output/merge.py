"""Chunk results -> one Transcript: absolute, monotonic word times and subtitle-ready segments.

The ASR text is the authority on what was said (punctuation, casing, digits); the aligner only says when. So aligned
words are located in the text instead of the text being rebuilt from words, and every character of every chunk text
lands in exactly one segment. Bad aligner times are repaired here, once (core.align.word_times), so writers and players
can trust them.
"""
from __future__ import annotations

import math
import unicodedata
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from core.align.word_times import repair_times
from core.languages import CHARACTER_LANGUAGES
from core.output.text import (MAX_SEGMENT_S, MAX_SEGMENT_WIDTH, OPENERS, PAUSE_BREAK_S, STUB_S, STUB_WIDTH,
                              display_width, ends_clause, ends_sentence, sentence_spans)
from core.types import Chunk, ChunkText, Segment, Transcript, Turn, Word


@dataclass(slots=True)
class _Piece:
    """The smallest unit segmentation moves: one aligned word's slice of the text, or one wordless sentence."""

    start: float
    end: float
    text: str  # whitespace-collapsed, never empty
    lead: str  # what separates it from the piece before it: " " or ""
    spaced: bool  # from a space-delimited language (breaking where lead == "" would split a token)
    words: list[Word] = field(default_factory=list)  # empty: a wordless chunk's sentence, always its own segment
    speaker: str | None = None


def build_transcript(chunks: list[Chunk], texts: list[ChunkText | None], words: list[list[Word] | None],
                     duration: float, *, language: str | None = None, turns: list[Turn] | None = None) -> Transcript:
    """Merge per-chunk ASR texts and chunk-relative word times into one transcript over [0, duration].

    With speaker `turns` (core.diarize), every word and segment gets the speaker it overlaps most, and segments
    also break where the speaker changes."""
    if not len(chunks) == len(texts) == len(words):
        raise ValueError("build_transcript needs one text and one word list per chunk")
    duration = float(duration) if math.isfinite(duration) and duration > 0 else 0.0
    pieces: list[_Piece] = []
    floor, prev_character, mismatched = 0.0, None, 0
    for chunk, result, chunk_words in zip(chunks, texts, words):
        if result is None or not result.text.strip():
            continue
        character = (result.language or language or "") in CHARACTER_LANGUAGES
        lo = min(max(chunk.offset, floor), duration)
        hi = max(min(chunk.offset + chunk.duration, duration), lo)
        new = _aligned_pieces(result.text, chunk_words, chunk.offset, lo, hi, not character) if chunk_words else None
        if chunk_words and new is None:
            mismatched += 1
        if new is None:
            new = _sentence_pieces(result.text, lo, hi, not character)
        new[0].lead = "" if character and prev_character else " "
        pieces.extend(new)
        floor, prev_character = new[-1].end, character
    if turns:
        _give_speakers(pieces, turns)
    segments, leads = _segment(pieces)
    text = "".join((lead if i else "") + seg.text for i, (seg, lead) in enumerate(zip(segments, leads)))
    warnings = []
    if mismatched:
        warnings.append(f"word timestamps of {mismatched} chunk(s) did not match their text; "
                        "those have segment-level times only")
    speakers = list(dict.fromkeys(seg.speaker for seg in segments if seg.speaker))
    return Transcript(language=_pick_language(chunks, texts, language), duration=duration, text=text,
                      segments=segments, speakers=speakers, warnings=warnings)


def _give_speakers(pieces: list[_Piece], turns: list[Turn]) -> None:
    """Each piece (and its words) takes the turn it overlaps most; one in a gap takes the nearest turn."""
    turns = sorted(turns, key=lambda t: t.start)
    starts = [t.start for t in turns]
    for p in pieces:
        i = max(bisect_right(starts, p.start) - 1, 0)
        best, score = turns[i].speaker, -math.inf
        for t in turns[i:]:
            overlap = min(t.end, p.end) - max(t.start, p.start)  # negative: the gap between them
            if overlap > score:
                best, score = t.speaker, overlap
            if t.start > p.end:
                break
        p.speaker = best
        for w in p.words:
            w.speaker = best


def _pick_language(chunks: list[Chunk], texts: list[ChunkText | None], language: str | None) -> str:
    """The requested language, else the one spoken longest, else 'unknown'."""
    if language:
        return language
    votes: Counter[str] = Counter()
    for chunk, result in zip(chunks, texts):
        if result is not None and result.text.strip() and result.language:
            votes[result.language] += chunk.duration
    return votes.most_common(1)[0][0] if votes else "unknown"


# --- words back into the text -----------------------------------------------------------------------------------


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


# ASCII is its own NFKD, and its letters and digits (what isalnum says) fold to their lower case: _fold in one call.
_ASCII_FOLD = {i: chr(i).lower() if chr(i).isalnum() else None for i in range(128)}


def _fold(text: str) -> str:
    """What matching compares: letters, digits and marks, compatibility-decomposed and case-folded."""
    if text.isascii():
        return text.translate(_ASCII_FOLD)
    return "".join(c.casefold() for c in unicodedata.normalize("NFKD", text) if _is_word_char(c))


_fold_char = lru_cache(maxsize=None)(_fold)  # for single characters only, so the cache stays small


def locate_words(text: str, tokens: list[str]) -> list[tuple[int, int] | None]:
    """Character span in `text` of each aligner token's letters and digits, in order; None where not found."""
    return _locate(text, [_fold(token) for token in tokens])


def _locate(text: str, needles: list[str]) -> list[tuple[int, int] | None]:
    if text.isascii():  # what the loop below gives for ASCII, where each letter or digit folds to one character
        hay, where = [text.translate(_ASCII_FOLD)], [i for i, ch in enumerate(text) if ch.isalnum()]
    else:
        hay, where = [], []
        for i, ch in enumerate(text):
            f = _fold_char(ch)
            if f:
                hay.append(f)
                where += [i] * len(f)
    folded, pos, spans = "".join(hay), 0, []
    for needle in needles:
        j = folded.find(needle, pos) if needle else -1
        if j < 0:
            spans.append(None)
            continue
        spans.append((where[j], where[j + len(needle) - 1] + 1))
        pos = j + len(needle)
    return spans


def _split_gap(gap: str) -> tuple[int, int]:
    """Where the previous word's trailing punctuation ends and the next word's leading punctuation starts."""
    if gap in ("", " "):  # between most words; the general case below gives the same
        return 0, len(gap)
    spaces = [i for i, ch in enumerate(gap) if ch.isspace()]
    if spaces:
        return spaces[0], spaces[-1] + 1
    cut = len(gap)
    while cut and (unicodedata.category(gap[cut - 1]) in ("Ps", "Pi") or gap[cut - 1] in OPENERS):
        cut -= 1
    return cut, cut


def _clean(text: str) -> str:
    return " ".join(text.split())


def _aligned_pieces(text: str, words: list[Word], offset: float, lo: float, hi: float,
                    spaced: bool) -> list[_Piece] | None:
    """One piece per aligned word, its text taken from the ASR text; None when most words are not in the text."""
    folded = [(w, f) for w in words if (f := _fold(w.text))]
    words = [w for w, _ in folded]
    spans = _locate(text, [f for _, f in folded])
    found = [i for i, s in enumerate(spans) if s is not None]
    if not words or 2 * len(found) < len(words):
        return None
    times = repair_times([(w.start + offset, w.end + offset) for w in words], lo, hi)
    # Token bounds (the k-th found word's from ta[k] to tb[k]): its letters plus the punctuation glued to it.
    ta, tb = [spans[i][0] for i in found], [spans[i][1] for i in found]
    while ta[0] and not text[ta[0] - 1].isspace():
        ta[0] -= 1
    for k in range(len(found) - 1):
        end_a, start_b = _split_gap(text[tb[k]:ta[k + 1]])
        tb[k], ta[k + 1] = tb[k] + end_a, tb[k] + start_b
    tb[-1] += _split_gap(text[tb[-1]:])[0]
    # Tiles: the text from one found word's token to the next one's, so no character is left out.
    tile_starts = [0] + ta[1:] + [len(text)]
    pieces: list[_Piece] = []
    orphans: list[Word] = []  # aligned words whose letters are not in the text: they ride with a neighbour
    for i, word in enumerate(words):
        s, e = times[i]
        if spans[i] is None:
            orphans.append(Word(s, e, _clean(word.text)))
            continue
        k = len(pieces)
        a = tile_starts[k]
        lead = " " if a > 0 and text[a - 1].isspace() else ""
        own = Word(s, e, _clean(text[ta[k]:tb[k]]))
        pieces.append(_Piece(s, e, _clean(text[a:tile_starts[k + 1]]), lead, spaced, orphans + [own]))
        orphans = []
    pieces[-1].words.extend(orphans)
    for p in pieces:
        p.start, p.end = p.words[0].start, max(p.words[-1].end, p.words[0].start)
    return pieces


# --- chunks without word times ----------------------------------------------------------------------------------


def _sentence_pieces(text: str, lo: float, hi: float, spaced: bool) -> list[_Piece]:
    """Sentences of a chunk without word times, its time span shared out by character count."""
    spans = [(a, b) for a, b in sentence_spans(text) if text[a:b].strip()]
    sizes = [len(_clean(text[a:b])) for a, b in spans]
    total, done, pieces = sum(sizes), 0, []
    for (a, b), size in zip(spans, sizes):
        start = min(lo + (hi - lo) * done / total, hi)
        done += size
        lead = " " if a > 0 and text[a - 1].isspace() else ""
        pieces.append(_Piece(start, min(lo + (hi - lo) * done / total, hi), _clean(text[a:b]), lead, spaced))
    return pieces


# --- segments ---------------------------------------------------------------------------------------------------


def _join(pieces: list[_Piece]) -> str:
    return pieces[0].text + "".join(p.lead + p.text for p in pieces[1:])


def _must_break(prev: _Piece, nxt: _Piece) -> bool:
    return (not prev.words or not nxt.words or nxt.start - prev.end >= PAUSE_BREAK_S
            or prev.speaker != nxt.speaker or ends_sentence(prev.text))


def _split_run(run: list[_Piece]) -> list[list[_Piece]]:
    """Cut a run with no forced break into segments within the limits, by dynamic programming.

    Each segment costs 2 * (1 - fill)^2, where fill is its share of the width or duration limit, so full, even
    segments win over a long one plus a stub, and a stub (a few words under 1.5 s) costs 1 more. A cut after a
    clause mark earns 1, one at a pause up to 0.5, and one inside a token (no space where spaces are the rule)
    costs 2.
    """
    n = len(run)
    starts = [p.start for p in run]
    cum, skip = [0], []  # the width of run[j:i] is cum[i] - skip[j]: run[j]'s lead is not part of it
    for k, p in enumerate(run):
        lead = display_width(p.lead) if k else 0
        skip.append(cum[-1] + lead)
        cum.append(cum[-1] + lead + display_width(p.text))
    best, back = [0.0] + [math.inf] * n, [0] * (n + 1)
    max_width, max_s, stub_width, stub_s = MAX_SEGMENT_WIDTH, MAX_SEGMENT_S, STUB_WIDTH, STUB_S  # locals: faster
    for i in range(1, n + 1):  # the inner loop is the hot spot of merge: everything that depends on i alone is out
        end, right, pause, clause, token = run[i - 1].end, cum[i], 0.0, 0.0, 0.0
        if i < n:
            nxt = run[i]
            pause = 0.5 * min(max(nxt.start - end, 0.0), PAUSE_BREAK_S) / PAUSE_BREAK_S
            clause = 1.0 if ends_clause(run[i - 1].text) else 0.0
            token = 2.0 if nxt.spaced and not nxt.lead else 0.0
        low, arg = math.inf, 0
        for j in range(i - 1, -1, -1):
            width, span = right - skip[j], end - starts[j]
            if j < i - 1 and (width > max_width or span > max_s):
                break  # longer segments only get wider and longer
            fill, by_time = width / max_width, span / max_s  # fill = min(1, max(both)), inlined
            if by_time > fill:
                fill = by_time
            if fill > 1.0:
                fill = 1.0
            cost = best[j] + 2 * (1 - fill) ** 2 + (1.0 if width < stub_width and span < stub_s else 0.0)
            cost = cost - pause - clause + token  # in this order, as always: the same rounding, the same cuts
            if cost < low:
                low, arg = cost, j
        best[i], back[i] = low, arg
    cuts, i = [], n
    while i > 0:
        cuts.append(i)
        i = back[i]
    bounds = [0] + cuts[::-1]
    return [run[a:b] for a, b in zip(bounds, bounds[1:])]


def _segment(pieces: list[_Piece]) -> tuple[list[Segment], list[str]]:
    """Group pieces into segments; also return what joins each segment to the one before it."""
    runs: list[list[_Piece]] = []
    for p in pieces:
        if runs and not _must_break(runs[-1][-1], p):
            runs[-1].append(p)
        else:
            runs.append([p])
    groups = [g for run in runs for g in _split_run(run)]
    segments = [Segment(g[0].start, max(g[-1].end, g[0].start), _join(g), [w for p in g for w in p.words],
                        g[0].speaker) for g in groups]
    return segments, [g[0].lead for g in groups]

"""The text rules merge and the writers share: how wide text is on screen, where sentences and clauses end, and
the sizes of subtitle lines and segments."""
from __future__ import annotations

import unicodedata
from functools import lru_cache

MAX_LINE_WIDTH = 42  # subtitle line, in display columns (a CJK character takes two)
MAX_SEGMENT_WIDTH = 2 * MAX_LINE_WIDTH
MAX_SEGMENT_S = 7.0
PAUSE_BREAK_S = 1.0
STUB_WIDTH, STUB_S = MAX_SEGMENT_WIDTH // 4, 1.5  # a forced cut should not leave a segment this small

SENTENCE_END = frozenset(".!?…。！？‼⁇⁈⁉؟۔।॥።")
_FULLWIDTH_END = frozenset("。！？…")  # end a sentence with no space after them
CLAUSE_END = frozenset(",;:—–、，；：،؛")
OPENERS = frozenset("¿¡")  # besides Unicode's opening punctuation (Ps, Pi)
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "approx"})


@lru_cache(maxsize=None)  # per character: merge and the writers measure every segment many times over
def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns `text` takes on screen: wide (CJK, fullwidth) characters count two, combining marks none."""
    if text.isascii():
        return len(text)  # every ASCII character, controls included, is one column
    return sum(map(_char_width, text))


def ends_sentence(text: str) -> bool:
    """True when `text` ends with sentence punctuation (closing quotes allowed after it) that is no abbreviation."""
    tail = text.rstrip()
    if tail[-1:].isalnum():  # most words: no letter or digit is punctuation
        return False
    while tail and (unicodedata.category(tail[-1]) in ("Pe", "Pf") or tail[-1] in "\"'"):
        tail = tail[:-1]
    if not tail or tail[-1] not in SENTENCE_END:
        return False
    if tail[-1] == ".":
        last = tail.split()[-1].rstrip(".").lower() if tail.split() else ""
        if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha() and last != "i"):
            return False
    return True


def ends_clause(text: str) -> bool:
    tail = text.rstrip()
    return bool(tail) and tail[-1] in CLAUSE_END


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of sentence-ish pieces of `text`, none wider than MAX_SEGMENT_WIDTH when that can be helped."""
    spans, start, i, n = [], 0, 0, len(text)
    while i < n:
        if text[i] not in SENTENCE_END:
            i += 1
            continue
        j = i + 1
        while j < n and (text[j] in SENTENCE_END or unicodedata.category(text[j]) in ("Pe", "Pf") or text[j] in "\"'"):
            j += 1
        if (j == n or text[j].isspace() or text[i] in _FULLWIDTH_END) and ends_sentence(text[start:j]):
            spans.append((start, j))
            start = j
        i = j
    spans.append((start, n))
    out = []
    for a, b in spans:
        out.extend(_split_long(text, a, b))
    return out


def _split_long(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Cut a span wider than MAX_SEGMENT_WIDTH at its last clause mark, else last space, else where it overflows."""
    out = []
    while True:
        while a < b and text[a].isspace():
            a += 1
        if a >= b:
            return out
        if display_width(text[a:b]) <= MAX_SEGMENT_WIDTH:
            return out + [(a, b)]
        limit, width = a, 0
        while limit < b and width + display_width(text[limit]) <= MAX_SEGMENT_WIDTH:
            width += display_width(text[limit])
            limit += 1
        window = range(limit, a + MAX_SEGMENT_WIDTH // 3, -1)
        cut = next((k for k in window if text[k - 1] in CLAUSE_END and (k == b or text[k].isspace()
                                                                          or text[k - 1] in "、，；：")), None)
        cut = cut or next((k for k in window if text[k].isspace()), None) or max(limit, a + 1)
        out.append((a, cut))
        a = cut

"""core.output.merge: offsets, repaired times, punctuation back on words, subtitle-sized segments, joins across chunks."""
import math
import re
import string
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.align.word_times import repair_times
from core.output.merge import build_transcript, locate_words
from core.output.text import display_width
from core.types import SAMPLE_RATE, Chunk, ChunkText, Word


def chunks_of(*bounds):
    """Chunks from (start_s, end_s) pairs."""
    return [Chunk(i, round(a * SAMPLE_RATE), round(b * SAMPLE_RATE)) for i, (a, b) in enumerate(bounds)]


def timed(tokens, start=0.0, step=0.5, length=0.4):
    """Aligner-style output: bare tokens, one every `step` seconds (chunk-relative)."""
    return [Word(start + i * step, start + i * step + length, t) for i, t in enumerate(tokens)]


def bare(text):
    """What the aligner returns for a space-delimited text: tokens without punctuation."""
    return re.findall(r"[\w']+", text)


def all_words(t):
    return [w for s in t.segments for w in s.words]


def check_invariants(t):
    """Times never go backwards, never overlap, stay inside [0, duration]; segments span their words."""
    prev_seg_end = prev_word_end = 0.0
    for seg in t.segments:
        assert prev_seg_end <= seg.start <= seg.end <= t.duration
        assert seg.text and seg.text == seg.text.strip()
        if seg.words:
            assert (seg.start, seg.end) == (seg.words[0].start, seg.words[-1].end)
        for w in seg.words:
            assert prev_word_end <= w.start <= w.end
            prev_word_end = w.end
        prev_seg_end = prev_word_end = seg.end


# --- offsets and times ------------------------------------------------------------------------------------------


def test_offsets_move_each_chunk_to_its_place_in_the_audio():
    chunks = chunks_of((0, 10), (10, 25), (25, 30))
    texts = [ChunkText("English", "one two"), ChunkText("English", "three"), ChunkText("English", "four five")]
    words = [timed(["one", "two"], 1.0), timed(["three"], 0.5), timed(["four", "five"], 2.0, step=1.0)]
    t = build_transcript(chunks, texts, words, 30.0)
    got = [(w.text, round(w.start, 6), round(w.end, 6)) for w in all_words(t)]
    assert got == [("one", 1.0, 1.4), ("two", 1.5, 1.9), ("three", 10.5, 10.9), ("four", 27.0, 27.4),
                   ("five", 28.0, 28.4)]
    check_invariants(t)


def test_bad_aligner_output_is_clamped_monotonic_and_inside_the_chunk():
    chunks = chunks_of((0, 5), (5, 10))
    texts = [ChunkText("English", "a b c d e f"), ChunkText("English", "g h i j")]
    words = [
        [Word(-2.0, -1.0, "a"),  # before the audio
         Word(1.0, 3.0, "b"),  # overlaps the next word
         Word(2.0, 2.5, "c"),
         Word(2.8, 3.0, "d"),
         Word(0.5, 0.6, "e"),  # out of order
         Word(4.5, 4.4, "f")],  # ends before it starts
        [Word(1.0, 1.5, "g"),
         Word(float("nan"), 2.0, "h"),
         Word(3.0, 9.0, "i"),  # runs past the chunk end (10 s)
         Word(12.0, 13.0, "j")],  # wholly past it
    ]
    t = build_transcript(chunks, texts, words, 10.0)
    ws = all_words(t)
    assert [w.text for w in ws] == list("abcdefghij")
    check_invariants(t)
    for w in ws[:6]:
        assert 0.0 <= w.start <= w.end <= 5.0
    for w in ws[6:]:
        assert 5.0 <= w.start <= w.end <= 10.0
    assert (ws[0].start, ws[1].start, ws[1].end, ws[2].start) == (0.0, 1.0, 2.0, 2.0)  # clamped; overlap cut
    assert (ws[4].start, ws[4].end) == (3.0, 4.5)  # the stray fills the gap between its neighbours d and f
    assert ws[5].start == 4.5 and ws[5].end == pytest.approx(4.52)  # reversed: zero length, then 20 ms
    assert (ws[7].start, ws[7].end) == (6.5, 8.0)  # NaN: placed between g and i
    assert ws[8].end == ws[9].start == ws[9].end == 10.0

def test_repair_times_spreads_strays_between_good_neighbours():
    fixed = repair_times([(1.0, 1.5), (9.0, 9.5), (2.0, 2.5), (3.0, 3.5)], 0.0, 10.0)
    # 9.0 is off the increasing run: it gets the gap between 1.5 and 2.0.
    assert fixed == [(1.0, 1.5), (1.5, 2.0), (2.0, 2.5), (3.0, 3.5)]


def test_zero_length_words_get_a_minimum_length_when_there_is_room():
    t = build_transcript(chunks_of((0, 5)), [ChunkText("English", "hi there")],
                         [[Word(1.0, 1.0, "hi"), Word(1.005, 1.005, "there")]], 5.0)
    hi, there = all_words(t)
    assert hi.end == there.start == 1.005  # no room: stops at the next word
    assert there.end == pytest.approx(1.025)  # room: 20 ms


# --- text -------------------------------------------------------------------------------------------------------


def test_punctuation_and_casing_come_back_from_the_text():
    text = 'Hello, world! "Quoted" text; it\'s fine — really.'
    tokens = ["hello", "world", "quoted", "text", "it's", "fine", "really"]  # aligner: bare, lower case
    t = build_transcript(chunks_of((0, 10)), [ChunkText("English", text)], [timed(tokens)], 10.0)
    assert [w.text for w in all_words(t)] == ["Hello,", "world!", '"Quoted"', "text;", "it's", "fine", "really."]
    assert t.text == text


def test_leading_punctuation_goes_with_the_next_word():
    t = build_transcript(chunks_of((0, 5)), [ChunkText("Spanish", "¿Qué tal? ¡Muy bien!")],
                         [timed(["Qué", "tal", "Muy", "bien"])], 5.0)
    assert [w.text for w in all_words(t)] == ["¿Qué", "tal?", "¡Muy", "bien!"]
    assert [s.text for s in t.segments] == ["¿Qué tal?", "¡Muy bien!"]


def test_words_the_aligner_skipped_stay_in_the_segment_text():
    text = "So, um, we went home."
    t = build_transcript(chunks_of((0, 5)), [ChunkText("English", text)], [timed(["So", "we", "went", "home"])],
                         5.0)
    assert t.text == text
    assert [w.text for w in all_words(t)] == ["So,", "we", "went", "home."]


def test_chinese_characters_keep_their_punctuation_and_get_no_spaces():
    text1, text2 = "你好，「世界」。今天", "天气很好！"
    units1 = [ch for ch in text1 if "\u4e00" <= ch <= "\u9fff"]
    units2 = [ch for ch in text2 if "\u4e00" <= ch <= "\u9fff"]
    t = build_transcript(chunks_of((0, 5), (5, 10)), [ChunkText("Chinese", text1), ChunkText("Chinese", text2)],
                         [timed(units1, step=0.3, length=0.25), timed(units2, step=0.3, length=0.25)], 10.0)
    assert [w.text for w in all_words(t)] == ["你", "好，", "「世", "界」。", "今", "天", "天", "气", "很", "好！"]
    assert t.text == "你好，「世界」。今天天气很好！"
    assert " " not in t.text
    assert "".join(s.text for s in t.segments) == t.text
    check_invariants(t)


def test_english_chunks_join_with_one_space_with_and_without_words():
    chunks = chunks_of((0, 5), (5, 10), (10, 15))
    texts = [ChunkText("English", "the end of one"), ChunkText("English", " start of two "),
             ChunkText("English", "and three.")]
    for words in ([timed(bare(x.text)) for x in texts], [None, None, None], [timed(bare(texts[0].text)), None, None]):
        t = build_transcript(chunks, texts, words, 15.0)
        assert t.text == "the end of one start of two and three."
        assert " ".join(s.text for s in t.segments) == t.text
        check_invariants(t)


# --- segments ---------------------------------------------------------------------------------------------------


def test_segments_break_at_sentence_ends_but_not_after_abbreviations():
    text = "I met Mr. Smith today. He was late! Why? Nobody knows."
    t = build_transcript(chunks_of((0, 20)), [ChunkText("English", text)], [timed(bare(text), step=0.3)], 20.0)
    assert [s.text for s in t.segments] == ["I met Mr. Smith today.", "He was late!", "Why?", "Nobody knows."]


def test_segments_break_at_long_pauses():
    tokens = "we waited for a while and then the bus came".split()
    words = timed(tokens[:5], 0.0, step=0.3) + timed(tokens[5:], 3.0, step=0.3)  # 1.6 s of silence after "while"
    t = build_transcript(chunks_of((0, 10)), [ChunkText("English", " ".join(tokens))], [words], 10.0)
    assert [s.text for s in t.segments] == ["we waited for a while", "and then the bus came"]


def test_long_sentences_are_cut_to_subtitle_size_preferring_commas():
    # 115 characters: two segments are needed; the comma at 68 beats the even cut near 57.
    text = ("So the thing about this whole situation is that nobody really knows, and that is what makes it "
            "interesting to watch")
    t = build_transcript(chunks_of((0, 60)), [ChunkText("English", text)], [timed(bare(text), step=0.25)], 60.0)
    assert [s.text for s in t.segments] == [
        "So the thing about this whole situation is that nobody really knows,",
        "and that is what makes it interesting to watch"]
    text = ("Once upon a time, in a small village by the sea, there lived an old fisherman who told stories "
            "every evening to anyone who would listen, and the children always came")
    t = build_transcript(chunks_of((0, 60)), [ChunkText("English", text)], [timed(bare(text), step=0.25)], 60.0)
    for seg in t.segments:
        assert len(seg.text) <= 84 and seg.end - seg.start <= 7.0
    assert t.segments[0].text == "Once upon a time, in a small village by the sea,"
    assert " ".join(s.text for s in t.segments) == text


def test_a_forced_cut_leaves_no_stub_after_a_leading_comma():
    text = ("Well, I think that we should probably go to the market tomorrow morning because the prices are "
            "lower and the vegetables are fresher")
    t = build_transcript(chunks_of((0, 60)), [ChunkText("English", text)], [timed(bare(text), step=0.25)], 60.0)
    assert len(t.segments) == 2 and t.segments[0].text != "Well,"
    assert all(len(s.text) >= 40 for s in t.segments)


def test_slow_speech_is_cut_at_seven_seconds():
    tokens = [f"w{i}" for i in range(30)]
    t = build_transcript(chunks_of((0, 40)), [ChunkText("English", " ".join(tokens))],
                         [timed(tokens, step=1.2, length=0.9)], 40.0)
    assert len(t.segments) >= 5
    for seg in t.segments:
        assert seg.end - seg.start <= 7.0
    assert [w.text for w in all_words(t)] == tokens


def test_chinese_segments_respect_the_width_limit():
    text = "今天我们去公园散步然后去超市买了很多东西回家以后做了一顿丰盛的晚饭大家都吃得很开心"  # 41 chars, 82 columns
    text = text + text
    t = build_transcript(chunks_of((0, 30)), [ChunkText("Chinese", text)], [timed(list(text), step=0.12)], 30.0)
    assert len(t.segments) >= 2
    for seg in t.segments:
        assert display_width(seg.text) <= 84
    assert "".join(s.text for s in t.segments) == text


# --- chunks without word times ----------------------------------------------------------------------------------


def test_chunks_without_words_share_their_span_by_character_count():
    texts = [ChunkText("English", "Aaaa bbbb. Cc dd."), ChunkText("English", "Eeee")]
    t = build_transcript(chunks_of((10, 20), (20, 30)), texts, [None, None], 30.0)
    got = [(s.text, round(s.start, 6), round(s.end, 6), s.words) for s in t.segments]
    # 10 + 6 characters over 10 s: the first sentence gets 10/16 of it.
    assert got == [("Aaaa bbbb.", 10.0, 16.25, []), ("Cc dd.", 16.25, 20.0, []), ("Eeee", 20.0, 30.0, [])]


def test_a_long_wordless_chunk_is_split_to_subtitle_size():
    text = "word " * 60 + "end."
    t = build_transcript(chunks_of((0, 30)), [ChunkText("Korean", text)], [None], 30.0)
    assert len(t.segments) >= 4
    assert all(len(s.text) <= 84 for s in t.segments)
    assert " ".join(s.text for s in t.segments) == " ".join(text.split())
    check_invariants(t)


def test_words_that_do_not_match_the_text_fall_back_to_sentences_with_a_warning():
    t = build_transcript(chunks_of((0, 5)), [ChunkText("English", "Real text here.")],
                         [timed(["something", "else", "entirely"])], 5.0)
    assert t.text == "Real text here." and t.segments[0].words == []
    assert len(t.warnings) == 1 and "did not match" in t.warnings[0]


def test_no_speech_anywhere_gives_an_empty_transcript():
    t = build_transcript(chunks_of((0, 5), (5, 8)), [None, ChunkText("English", "  ")], [None, None], 8.0)
    assert (t.text, t.segments, t.language, t.duration, t.warnings) == ("", [], "unknown", 8.0, [])
    t = build_transcript([], [], [], 0.0, language="German")
    assert (t.text, t.language) == ("", "German")


def test_language_is_the_requested_one_else_the_longest_spoken():
    chunks = chunks_of((0, 5), (5, 7), (7, 9))
    texts = [ChunkText("English", "hello"), ChunkText("French", "bonjour"), ChunkText("French", "salut")]
    assert build_transcript(chunks, texts, [None] * 3, 9.0).language == "English"  # 5 s against 4 s
    assert build_transcript(chunks, texts, [None] * 3, 9.0, language="Spanish").language == "Spanish"


@pytest.mark.parametrize("language", ["English", "Chinese"])
def test_a_benchmark_shaped_job_keeps_every_word_and_character(language):
    from bench.merge_bench import hour_job

    chunks, texts, words, duration = hour_job(6, language, seed=3, unvoiced=0.1, failed=0.2)
    assert None in texts and any(t is not None and w is None for t, w in zip(texts, words))
    t = build_transcript(chunks, texts, words, duration)
    check_invariants(t)
    joiner = "" if language == "Chinese" else " "
    assert t.text == joiner.join(s.text for s in t.segments) == joiner.join(x.text for x in texts if x is not None)
    assert len(all_words(t)) == sum(len(w) for w in words if w is not None)
    assert t.warnings == []


# --- text measures: the fast paths give the rule's answers ---------------------------------------------------------


def test_display_width_of_examples():
    assert [display_width(x) for x in ("", "abc", "a\tb", "你好", "ｈｉ", "e\u0301", "a\u200bb", "👋🏽")] == \
        [0, 3, 3, 4, 4, 1, 2, 4]


@given(st.text())
def test_property_display_width_is_the_per_character_rule(text):
    def rule(ch):
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            return 0
        return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1

    assert display_width(text) == sum(rule(ch) for ch in text)
    assert display_width(text + "é") == display_width(text) + 1  # the same text off the ASCII path


@given(st.text(string.printable, max_size=60), st.lists(st.text(string.printable, max_size=6), max_size=8))
def test_property_locating_words_in_ascii_agrees_with_the_unicode_path(text, tokens):
    # An em dash folds to nothing, so appending one changes no answer but takes text and tokens off the ASCII path.
    assert locate_words(text, tokens) == locate_words(text + "—", [t + "—" for t in tokens])


# --- properties -------------------------------------------------------------------------------------------------

_token = st.text(string.ascii_letters + string.digits + "'", min_size=1, max_size=8).filter(lambda s: s.strip("'"))
_time = st.one_of(st.floats(-5, 40, allow_nan=False), st.just(float("nan")), st.just(float("inf")))
_punct = st.sampled_from(["", "", "", ",", ".", "?", "!", ";", ":", '"'])


@st.composite
def chunked_speech(draw):
    n = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.floats(0.5, 60), min_size=n, max_size=n, unique=True)))
    bounds = list(zip([0.0] + cuts[:-1], cuts))
    duration = cuts[-1] + draw(st.floats(0, 2))
    texts, words, tokens_all = [], [], []
    for a, b in bounds:
        tokens = draw(st.lists(_token, max_size=25))
        if not tokens:
            texts.append(None)
            words.append(None)
            continue
        text = " ".join(t + draw(_punct) for t in tokens)
        texts.append(ChunkText("English", text))
        aligned = draw(st.booleans())
        words.append([Word(draw(_time), draw(_time), t) for t in tokens] if aligned else None)
        tokens_all.append((tokens, aligned))
    return chunks_of(*bounds), texts, words, duration, tokens_all


@given(chunked_speech())
def test_property_times_are_sane_and_every_word_appears_once_in_order(case):
    chunks, texts, words, duration, tokens_all = case
    t = build_transcript(chunks, texts, words, duration)
    check_invariants(t)
    assert all(math.isfinite(x) for s in t.segments for x in [s.start, s.end] + [v for w in s.words
                                                                                  for v in (w.start, w.end)])
    expected = [tok for tokens, aligned in tokens_all if aligned for tok in tokens]
    got = [re.sub(r"[^\w']", "", w.text) for w in all_words(t)]
    assert got == expected
    assert t.text == " ".join(s.text for s in t.segments)
    assert t.text == " ".join(" ".join(x.text.split()) for x in texts if x is not None)
    for seg in t.segments:
        if len(seg.words) > 1:
            assert len(seg.text) <= 84 and seg.end - seg.start <= 7.0


@given(st.lists(st.lists(st.sampled_from(list("我们你好天气很今日本語。，！")), max_size=30), min_size=1, max_size=3))
def test_property_character_languages_join_without_spaces(parts):
    bounds = [(10.0 * i, 10.0 * (i + 1)) for i in range(len(parts))]
    texts = ["".join(p) for p in parts]
    results = [ChunkText("Chinese", x) if x else None for x in texts]
    words = [timed([ch for ch in x if ch not in "。，！"], step=0.2, length=0.15) or None for x in texts]
    t = build_transcript(chunks_of(*bounds), results, words, 10.0 * len(parts))
    check_invariants(t)
    assert t.text == "".join(texts)
    assert "".join(s.text for s in t.segments) == t.text

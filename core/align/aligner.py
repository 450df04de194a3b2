"""Word times from Qwen3-ForcedAligner: audio + known text in, a start and end for every word out.

The aligner reads `<|audio_start|><|audio_pad|>…<|audio_end|>word<timestamp><timestamp>word<timestamp><timestamp>…`
(no chat turns; the placeholder expanded to one token per encoder frame) and classifies each <timestamp> into one of
5000 classes of `timestamp_segment_time` (80 ms): a word's first timestamp is its start, the second its end. Only
the <timestamp> positions matter, so the 5000-class head is applied to those hidden states alone, in float32, rather
than to every token (measured 5x faster on GPU, and no bf16 ties between classes).

Times are seconds from the chunk start, repaired to run forward and clamped to the chunk. A chunk that cannot be
aligned (too long, an error) gets None and the job goes on with segment-level times for it.
"""
from __future__ import annotations

import logging
import time
import unicodedata

from core.align.word_times import words_from_marks
from core.config import Config
from core.models.engine import BatchEngine
from core.models.layout import aligner_timing, batch_features, load_aligner_model, load_processor, resolve_device
from core.types import MAX_ALIGN_SECONDS, SAMPLE_RATE, AlignRequest, Progress, Word, no_progress

log = logging.getLogger("core")



def _is_cjk(ch: str) -> bool:
    """CJK ideographs (the unified blocks, extensions A-E, compatibility ideographs)."""
    c = ord(ch)
    return (0x4E00 <= c <= 0x9FFF or 0x3400 <= c <= 0x4DBF or 0x20000 <= c <= 0x2CEAF or 0xF900 <= c <= 0xFAFF
            or 0x2F800 <= c <= 0x2FA1F)


def _is_kept(ch: str) -> bool:
    """Letters, digits and apostrophes are aligned; punctuation and symbols are not."""
    return ch == "'" or unicodedata.category(ch)[0] in "LN"


def _is_kana(ch: str) -> bool:
    c = ord(ch)
    return 0x3040 <= c <= 0x30FF or 0x31F0 <= c <= 0x31FF or 0xFF66 <= c <= 0xFF9F


def split_words(text: str, language: str) -> list[str]:
    """The units the aligner times, as the Qwen processor splits them: every CJK character on its own (and, for
    Japanese, every kana too), other letters and digits in whitespace-separated runs, punctuation dropped (so a
    hyphenated word stays one unit)."""
    alone = _is_cjk if language != "Japanese" else (lambda ch: _is_cjk(ch) or _is_kana(ch))
    words: list[str] = []
    for chunk in text.split():
        run = ""
        for ch in chunk:
            if not _is_kept(ch):
                continue
            if alone(ch):
                if run:
                    words.append(run)
                    run = ""
                words.append(ch)
            else:
                run += ch
        if run:
            words.append(run)
    return words


def auto_batch_size(device: str) -> int:
    """Chunks per aligner call: 32 on a GPU of 40 GiB or more (an hour aligned in 1.68 s against 2.50 s at 8 on
    an H100; 8.7 GiB peak, bench/RESULTS.md), else 8 (3.5 GiB peak on a GPU; on a CPU larger batches gain nothing)."""
    if device != "cuda":
        return 8
    import torch

    return 32 if torch.cuda.get_device_properties(0).total_memory >= 40 * 1024**3 else 8


class Aligner:
    """Qwen3-ForcedAligner on `Qwen3ASRForTokenClassification`, loaded once."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.device, self.dtype = resolve_device(config)
        self.model = load_aligner_model(config.aligner_model, self.device, self.dtype)
        processor = load_processor(config.aligner_model)
        self.tokenizer, self.extractor = processor.tokenizer, processor.feature_extractor
        timing = aligner_timing(config.aligner_model)
        self.timestamp_id, self.segment_s = timing.timestamp_token_id, timing.segment_s
        self.max_positions = int(self.model.config.text_config.max_position_embeddings)
        self._ids = {t: self.tokenizer.convert_tokens_to_ids(t)
                     for t in ("<|audio_start|>", "<|audio_pad|>", "<|audio_end|>", "<|endoftext|>")}
        self.batch_size = config.align_batch_size or auto_batch_size(self.device)
        # one model pass at a time, its batches filled from every job's queued chunks (core.models.engine)
        self.engine = BatchEngine("aligner", self._run_batch, self.batch_size)
        self.last_stats: dict[str, float] = {}  # where the last call's time went (benchmarks read it)

    def describe(self) -> str:
        return f"{self.config.aligner_model} (transformers, {self.device}, {str(self.dtype).removeprefix('torch.')})"

    def input_ids(self, words: list[str], audio_tokens: int) -> list[int]:
        """The aligner's input: expanded audio placeholder, then each word followed by two <timestamp>.

        Words are tokenized one by one (a word's tokens never depend on its neighbours), in one batch call: an
        hour has ~9000 words, and a call per word cost more than the aligner's GPU work on them."""
        ids = [self._ids["<|audio_start|>"]] + [self._ids["<|audio_pad|>"]] * audio_tokens
        ids.append(self._ids["<|audio_end|>"])
        marks = [self.timestamp_id, self.timestamp_id]
        for tokens in (self.tokenizer(words, add_special_tokens=False)["input_ids"] if words else []):
            ids += tokens + marks
        return ids

    def align(self, requests: list[AlignRequest], progress: Progress = no_progress) -> list[list[Word] | None]:
        """Word lists (times relative to each chunk's start) in request order; None where alignment failed."""
        results: list[list[Word] | None] = [None] * len(requests)
        todo = []
        for i, req in enumerate(requests):
            try:
                words, duration = split_words(req.text, req.language), len(req.audio) / SAMPLE_RATE
            except TypeError:
                log.exception("alignment skipped: malformed request")
                continue
            if not words:
                results[i] = []
            elif duration > MAX_ALIGN_SECONDS + 0.5:
                log.warning("alignment skipped: chunk of %.0f s is longer than the aligner's %.0f s", duration,
                            MAX_ALIGN_SECONDS)
            else:
                todo.append((i, words))
        todo.sort(key=lambda item: len(requests[item[0]].audio), reverse=True)  # similar lengths share a batch
        skipped = len(requests) - len(todo)
        # this call's model time (a job alone, as in the benchmark; with jobs at once their batches count here)
        self.last_stats = {"chunks": len(todo), "features_s": 0.0, "inputs_s": 0.0, "model_s": 0.0, "words_s": 0.0}

        def report(stage: str, done: float, total: float | None) -> None:
            progress("align", skipped + done, len(requests))

        progress("align", 0, len(requests))
        out = self.engine.run([(requests[i], words) for i, words in todo], report, "align")
        for (i, _), words in zip(todo, out):
            results[i] = words
        progress("align", len(requests), len(requests))
        return results

    def _run_batch(self, batch: list[tuple[AlignRequest, list[str]]]) -> list[list[Word] | None]:
        """One model pass; if it fails, its chunks one by one, so one bad chunk does not take its batch mates down."""
        try:
            return self._run([r for r, _ in batch], [w for _, w in batch])
        except Exception:
            log.exception("aligner batch of %d failed; retrying chunk by chunk", len(batch))
        out = []
        for request, words in batch:
            try:
                out += self._run([request], [words])
            except Exception:
                log.exception("alignment failed for a chunk of %.1f s", len(request.audio) / SAMPLE_RATE)
                out.append(None)
        return out

    def _run(self, batch: list[AlignRequest], word_lists: list[list[str]]) -> list[list[Word] | None]:
        import torch

        clock = _Clock(self.last_stats)
        with torch.inference_mode():
            features, mask, n_audio = batch_features(self.extractor, [r.audio for r in batch], self.device,
                                                     self.dtype)
            clock.lap("features_s")
            rows = [self.input_ids(w, n) for w, n in zip(word_lists, n_audio)]
            keep = [len(r) <= self.max_positions for r in rows]
            for ok, r, req in zip(keep, rows, batch):
                if not ok:
                    log.warning("alignment skipped: %d positions exceed the aligner's %d (chunk of %.0f s)", len(r),
                                self.max_positions, len(req.audio) / SAMPLE_RATE)
            if not any(keep):
                return [None] * len(batch)
            sel = [j for j, ok in enumerate(keep) if ok]
            width = max(len(rows[j]) for j in sel)  # right padding: positions start at 0 in every row
            ids = torch.tensor([rows[j] + [self._ids["<|endoftext|>"]] * (width - len(rows[j])) for j in sel],
                               device=self.device)
            attention = torch.tensor([[1] * len(rows[j]) + [0] * (width - len(rows[j])) for j in sel],
                                     device=self.device)
            clock.lap("inputs_s")
            hidden = self.model.model(input_ids=ids, attention_mask=attention, input_features=features[sel],
                                      input_features_mask=mask[sel]).last_hidden_state
            marks = ids == self.timestamp_id
            head = self.model.score
            logits = torch.nn.functional.linear(hidden[marks].float(), head.weight.float(),
                                                None if head.bias is None else head.bias.float())
            classes = logits.argmax(dim=-1).tolist()  # waits for the GPU
            counts = marks.sum(dim=1).tolist()
            clock.lap("model_s")
        out: list[list[Word] | None] = [None] * len(batch)
        start = 0
        for j, count in zip(sel, counts):
            times = [c * self.segment_s for c in classes[start:start + count]]
            start += count
            out[j] = words_from_marks(word_lists[j], times, len(batch[j].audio) / SAMPLE_RATE)
        clock.lap("words_s")
        return out


class _Clock:
    """Adds the time since the last lap to `stats[name]`."""

    def __init__(self, stats: dict[str, float]) -> None:
        self.stats, self.t = stats, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stats[name] = round(self.stats.get(name, 0.0) + now - self.t, 4)
        self.t = now


def load_aligner(config: Config) -> Aligner | None:
    """The aligner ALIGNER_MODEL names, or None when it is empty (word timestamps off)."""
    if not config.aligner_model.strip():
        return None
    log.info("loading aligner %s", config.aligner_model)
    return Aligner(config)

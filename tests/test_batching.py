"""Group commit (core.models.batching): concurrent callers share one model's batches, in order, errors to all."""
from __future__ import annotations

import threading
import time

import pytest

from core.models.batching import GroupCommit


def first_then_merged(first, others, started: threading.Event, gate: threading.Event) -> None:
    """Run `first` (its run holds the engine until `gate`), let `others` queue up meanwhile, then release and wait:
    the others' items go into one merged run."""
    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert started.wait(5)
    threads += [threading.Thread(target=call) for call in others]
    for t in threads[1:]:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)


def test_group_commit_batches_waiting_callers_and_keeps_order():
    calls = []
    started, gate = threading.Event(), threading.Event()

    def run(items, progress, on_result):
        calls.append(list(items))
        if len(calls) == 1:
            started.set()
            gate.wait(5)  # hold the engine while the others queue up
        return [i * 10 for i in items]

    batcher = GroupCommit(run)
    out = {}
    first_then_merged(lambda: out.__setitem__(0, batcher.submit([0, 1])),
                      [lambda k=k: out.__setitem__(k, batcher.submit([k * 100, k * 100 + 1])) for k in range(1, 6)],
                      started, gate)
    assert out[0] == [0, 10]
    assert all(out[k] == [k * 1000, k * 1000 + 10] for k in range(1, 6))
    assert len(calls) == 2 and len(calls[1]) == 10  # the five waiting callers went in one call


def test_group_commit_hands_the_error_to_every_caller_of_the_batch():
    def run(items, progress, on_result):
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError, match="engine died"):
        GroupCommit(run).submit([1])


def test_a_caller_alone_gets_its_progress_and_merged_callers_do_not():
    seen = []

    def run(items, progress, on_result):
        progress("align", len(items), len(items))
        return items

    def mine(stage, done, total):
        seen.append((stage, done, total))

    assert GroupCommit(run).submit([1, 2, 3], mine) == [1, 2, 3]
    assert seen == [("align", 3, 3)]


def test_a_cancelled_caller_alone_stops_its_own_run():
    class Cancelled(Exception):
        pass

    def run(items, progress, on_result):
        progress("align", 0, len(items))
        return items

    def cancel(*_):
        raise Cancelled

    batcher = GroupCommit(run)
    with pytest.raises(Cancelled):
        batcher.submit([1], cancel)
    assert batcher.submit([2]) == [2]  # the model is free for the next job


def test_each_caller_hears_its_own_results_as_they_finish_with_its_own_indexes():
    gate = threading.Event()
    started = threading.Event()
    heard = {0: [], 1: [], 2: []}

    def run(items, progress, on_result):
        if not started.is_set():
            started.set()
            gate.wait(5)  # hold the engine so callers 1 and 2 are merged into the next call
        for i in reversed(range(len(items))):  # finish out of order, as an engine does
            on_result(i, items[i] * 2)
        return [x * 2 for x in items]

    batcher = GroupCommit(run)
    out = {}

    def listener(k):
        return lambda i, r: heard[k].append((i, r))

    first_then_merged(lambda: out.__setitem__(0, batcher.submit([1], on_result=listener(0))),
                      [lambda k=k: out.__setitem__(k, batcher.submit([k * 10, k * 10 + 1, k * 10 + 2],
                                                                     on_result=listener(k))) for k in (1, 2)],
                      started, gate)
    assert heard[0] == [(0, 2)]
    for k in (1, 2):
        assert sorted(heard[k]) == [(0, k * 20), (1, k * 20 + 2), (2, k * 20 + 4)]
        assert out[k] == [k * 20, k * 20 + 2, k * 20 + 4]


def test_a_failing_listener_does_not_fail_the_run():
    def run(items, progress, on_result):
        for i, x in enumerate(items):
            on_result(i, x)
        return items

    def broken(i, r):
        raise ValueError("listener bug")

    assert GroupCommit(run).submit([1, 2], on_result=broken) == [1, 2]


def test_the_queue_depth_and_the_run_counts_show_what_merging_achieved():
    started, gate = threading.Event(), threading.Event()

    def run(items, progress, on_result):
        started.set()
        gate.wait(5)  # the first call holds the engine while the others queue up
        return items

    batcher = GroupCommit(run)
    assert (batcher.pending(), batcher.runs, batcher.items_run) == (0, 0, 0)
    threads = [threading.Thread(target=batcher.submit, args=([1, 2],))]
    threads[0].start()
    assert started.wait(5)
    threads += [threading.Thread(target=batcher.submit, args=([k, k, k],)) for k in range(3)]
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 5
    while batcher.pending() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (batcher.pending(), batcher.runs, batcher.items_run) == (3, 1, 2)
    gate.set()
    for t in threads:
        t.join(5)
    assert (batcher.pending(), batcher.runs, batcher.items_run) == (0, 2, 11)

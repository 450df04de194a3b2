"""The waiting line in front of the models (issue 15): unit tests of `webui.waiting.WaitingLine`, then the real app on
loopback with one slot, seen through gradio_client and in headless chromium: a second job says how many jobs are
ahead of it in our words, never Gradio's "queue: 1/1", a full line refuses a job with a message, and all finish.

The first job is held at its start by a gate the test opens, so "the slot is taken" is a state, not a race.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from audio_helpers import make_podcast
from bench.checkpoints import RIG_TEXT
from core.errors import CoreError, JobCancelled
from net_helpers import wait_until
from webui.waiting import LineFull, WaitingLine, busy_message, waiting_text
from webui_helpers import app_config, browser, serve, tiny_pipeline

WAITING = re.compile(r"^Waiting for 1 job ahead of yours \(\d+:\d\d\)$")


class Waiter:
    """One job in a thread: enters `line`, records its reports, holds its slot until `leave` is set."""

    def __init__(self, line: WaitingLine, name: str = "", order: list | None = None) -> None:
        self.line, self.name, self.order = line, name, order
        self.reports: list[tuple[int, float]] = []
        self.cancel, self.leave, self.admitted = threading.Event(), threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.line.place(self.cancel, lambda ahead, waited: self.reports.append((ahead, waited))):
                if self.order is not None:
                    self.order.append(self.name)
                self.admitted.set()
                self.leave.wait(30)
        except BaseException as e:  # noqa: BLE001  (JobCancelled is one)
            self.error = e

    def ahead(self) -> int | None:
        return self.reports[-1][0] if self.reports else None

    def done(self, timeout: float = 10.0) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


def in_line(line: WaitingLine, n: int, **kwargs) -> list[Waiter]:
    """`n` waiters started one after another, each in line (it has reported) before the next starts."""
    waiters = []
    for i in range(n):
        w = Waiter(line, str(i), **kwargs)
        assert wait_until(lambda: w.reports or w.admitted.is_set(), timeout=10)
        waiters.append(w)
    return waiters


def test_jobs_start_in_the_order_they_came_and_see_their_place_move_up():
    line, order = WaitingLine(slots=1, max_waiting=8, interval=0.01), []
    holder, *waiting = in_line(line, 7, order=order)
    assert holder.admitted.is_set() and not holder.reports  # a free slot: no wait, nothing reported
    assert [w.ahead() for w in waiting] == [1, 2, 3, 4, 5, 6]  # the running job counts as ahead
    last = waiting[-1]
    for i, leaving in enumerate([holder] + waiting[:-1]):
        leaving.leave.set()
        nxt = waiting[i]
        assert nxt.admitted.wait(10)
        if nxt is not last:
            assert wait_until(lambda: last.ahead() == 5 - i, timeout=10)
    last.leave.set()
    assert all(w.done() and w.error is None for w in [holder] + waiting)
    assert order == [str(i) for i in range(7)]
    distinct = [a for j, (a, _) in enumerate(last.reports) if j == 0 or a != last.reports[j - 1][0]]
    assert distinct == [6, 5, 4, 3, 2, 1]
    waited = [t for _, t in last.reports]
    assert waited == sorted(waited)
    assert line.counts() == (0, 0)


def test_reports_keep_coming_while_a_job_waits():
    line = WaitingLine(slots=1, max_waiting=2, interval=0.02)
    holder, waiter = in_line(line, 2)
    assert wait_until(lambda: len(waiter.reports) >= 4, timeout=10)
    assert {a for a, _ in waiter.reports} == {1} and waiter.reports[-1][1] > waiter.reports[0][1]
    holder.leave.set()
    waiter.leave.set()
    assert holder.done() and waiter.done() and waiter.error is None


def test_cancel_while_waiting_raises_and_gives_up_the_place():
    line = WaitingLine(slots=1, max_waiting=4)
    holder, cancelled, behind = in_line(line, 3)
    assert behind.ahead() == 2
    cancelled.cancel.set()
    assert cancelled.done() and isinstance(cancelled.error, JobCancelled)
    assert not cancelled.admitted.is_set()
    assert wait_until(lambda: behind.ahead() == 1, timeout=10)  # its place is gone from the line
    assert line.counts() == (1, 1)
    holder.leave.set()
    assert behind.admitted.wait(10)
    behind.leave.set()
    assert holder.done() and behind.done() and behind.error is None
    assert line.counts() == (0, 0)


def test_a_cancelled_job_does_not_take_a_free_slot():
    line, cancel = WaitingLine(slots=1, max_waiting=0), threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        with line.place(cancel):
            pytest.fail("a cancelled job started")
    assert line.counts() == (0, 0)


def test_a_full_line_refuses_at_once_with_a_message():
    line = WaitingLine(slots=1, max_waiting=2)
    waiters = in_line(line, 3)
    refused = Waiter(line)
    assert refused.done() and isinstance(refused.error, LineFull)
    assert isinstance(refused.error, CoreError)  # the page and the API show it as the user's message
    assert str(refused.error) == "The transcriber is busy: 2 jobs are waiting. Try again in a few minutes."
    assert not refused.reports and not refused.admitted.is_set() and line.counts() == (1, 2)
    for w in waiters:
        w.leave.set()
    assert all(w.done() and w.error is None for w in waiters)
    assert busy_message(16) == "The transcriber is busy: 16 jobs are waiting. Try again in a few minutes."
    assert busy_message(1) == "The transcriber is busy: 1 job is waiting. Try again in a few minutes."
    assert busy_message(0) == "The transcriber is busy. Try again in a few minutes."


def test_the_slot_is_released_when_the_job_fails():
    line = WaitingLine(slots=1, max_waiting=1)
    with pytest.raises(RuntimeError):
        with line.place():
            raise RuntimeError("the model broke")
    assert line.counts() == (0, 0)
    holder = Waiter(line)
    assert holder.admitted.wait(10)
    waiter = Waiter(line)
    assert wait_until(lambda: waiter.reports, timeout=10)
    holder.leave.set()  # the holder's block ends (normally); the waiter gets the slot
    assert waiter.admitted.wait(10)
    waiter.cancel.set()  # set while it holds the slot: cancelling is the job's business then, not the line's
    waiter.leave.set()
    assert waiter.done() and waiter.error is None and line.counts() == (0, 0)


def test_waiting_text():
    assert waiting_text(1, 3.7) == "Waiting for 1 job ahead of yours (0:03)"
    assert waiting_text(2, 65) == "Waiting for 2 jobs ahead of yours (1:05)"
    assert waiting_text(3, 3725) == "Waiting for 3 jobs ahead of yours (1:02:05)"


# --- the app: one slot, one place in line --------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency, queue_size, threads", [(1, 16, 40), (2, 50, 61)])
def test_gradio_lets_every_job_through_to_the_line(concurrency, queue_size, threads):
    """The job event admits all the line holds plus one (refused in our words); Gradio's threads hold them all."""
    from webui import build_demo, launch
    from webui_helpers import free_port

    config = app_config(app_concurrency=concurrency, app_queue_size=queue_size)
    demo = build_demo(tiny_pipeline(app_config()), config)
    try:
        line = demo.waiting_line  # the line a later API in this process shares
        assert (line.slots, line.max_waiting) == (concurrency, queue_size)
        jobs = [fn for fn in demo.fns.values() if fn.name == "transcribe"]
        assert len(jobs) == 2 and {fn.concurrency_id for fn in jobs} == {"job"}
        assert {fn.concurrency_limit for fn in jobs} == {concurrency + queue_size + 1}
        launch(demo, config, server_port=free_port(), prevent_thread_lock=True, quiet=True)
        assert demo.max_threads == threads >= concurrency + queue_size + 1
    finally:
        demo.close()


class GatedPipeline:
    """The tiny pipeline, every job held at its start until `gate` opens; counts the jobs inside it at once."""

    def __init__(self, pipeline) -> None:
        self.pipeline, self.config = pipeline, pipeline.config
        self.gate, self.lock = threading.Event(), threading.Lock()
        self.started = self.inside = self.most_inside = 0

    def describe(self) -> str:
        return self.pipeline.describe()

    def transcribe(self, *args, **kwargs):
        with self.lock:
            self.started += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self.gate.wait(120)
            return self.pipeline.transcribe(*args, **kwargs)
        finally:
            with self.lock:
                self.inside -= 1


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return make_podcast(tmp_path_factory.mktemp("audio") / "interview.mp3", 0.3).path


@pytest.fixture
def gated():
    config = app_config(app_concurrency=1, app_queue_size=1)
    pipeline = GatedPipeline(tiny_pipeline(app_config()))
    with serve(config, pipeline) as url:
        yield url, pipeline
    pipeline.gate.set()


def submit(client: Client, audio: Path):
    return client.submit(handle_file(str(audio)), None, "", "Auto-detect", "", True, 30, api_name="/transcribe")


def shows_waiting(job, seen: list[str]) -> bool:
    """Whether the job's progress now reads "Waiting for 1 job ahead of yours (m:ss)"; what it read goes to `seen`."""
    seen += [unit.desc for unit in job.status().progress_data or [] if unit.desc]
    return bool(seen) and WAITING.match(seen[-1]) is not None


def test_a_second_job_waits_in_our_line_a_third_is_refused_and_both_finish(gated, speech, tmp_path):
    url, pipeline = gated
    client = Client(url, verbose=False, download_files=str(tmp_path))
    first = submit(client, speech)
    assert wait_until(lambda: pipeline.started == 1, timeout=60)
    second = submit(client, speech)
    seen: list[str] = []
    assert wait_until(lambda: shows_waiting(second, seen), timeout=30), seen
    assert second.status().rank in (None, 0) and pipeline.started == 1  # ours to word, not Gradio's queue
    with pytest.raises(AppError, match=re.escape(busy_message(1))):
        submit(client, speech).result(timeout=60)
    pipeline.gate.set()
    for job in (first, second):
        player, files, _ = job.result(timeout=120)
        assert player["transcript"]["text"] == RIG_TEXT and len(files) == 4
    assert pipeline.started == 2 and pipeline.most_inside == 1


@pytest.mark.browser
def test_the_page_shows_our_waiting_text_not_gradios_queue(gated, speech, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from webui_helpers import upload, wait_for_player

    url, pipeline = gated
    first = submit(Client(url, verbose=False, download_files=str(tmp_path)), speech)
    assert wait_until(lambda: pipeline.started == 1, timeout=60)
    with playwright_api.sync_playwright() as p:
        chromium = browser(p)
        try:
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            upload(page, speech)
            page.get_by_role("button", name="Transcribe").click()
            page.get_by_text(re.compile(r"Waiting for 1 job ahead of yours \(\d+:\d\d\)")).first.wait_for(
                timeout=30_000)
            assert "queue:" not in page.inner_text("body")
            pipeline.gate.set()
            wait_for_player(page)
            assert "queue:" not in page.inner_text("body")
        finally:
            chromium.close()
    assert first.result(timeout=120)[0]["transcript"]["text"] == RIG_TEXT
    assert pipeline.most_inside == 1

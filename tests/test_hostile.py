"""Hostile input through all three entry points: the core API, the RunPod handler and the web app.

One table of cases, each run through every entry point that can express it (`hostile_helpers`), each asserting:
the user gets a clear message with the expected phrase (or, for odd but valid audio, a correct result); the
message holds no stack trace, local path or host name of this machine; the loopback canary received nothing; no
temporary file is left; and the next good job in the same entry point still succeeds.

Everything runs as deployed, with the private-address switch OFF. Cases that need a public web server (a
redirect to loopback, DNS names that resolve inward, the fetch limits) run in a private network namespace
(`hostile_netns.py`, asserted in test_hostile_netns.py), and hypothesis throws generated jobs at the handler
(test_hostile_fuzz.py). Here also: README.md's "Security and limits" is checked against the settings it documents.

A known gap would be a strict xfail whose reason names the fix, so that it fails (XPASS) once the fix lands.
"""
from __future__ import annotations

import base64
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from core.config import Config
from core.fetch.url_guard import MAX_URL_CHARS
from core.options import CHUNK_SECONDS_RANGE, MAX_CONTEXT_CHARS
from core.remote.schema import RUNSYNC_PAYLOAD_LIMIT
from hostile_helpers import (ENTRIES, ROOT, CoreEntry, Expect, Hostile, NotApplicable, Outcome, WebEntry, WorkerEntry,
                             good_speech_ok, leaks)
from hostile_setup_helpers import Media, canary, config, media, pipeline, private_tmp  # noqa: F401 (fixtures)
from net_helpers import wait_until
from runpod_worker.handler import Worker


# -- the table ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ctx:
    canary: int  # the canary's port: SSRF URLs aim at it, so a request that slips through is seen
    media: Media


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Ctx], Hostile]
    expect: Expect
    ssrf: bool = False
    entries: tuple[str, ...] = ENTRIES
    xfail: dict[str, str] = field(default_factory=dict)  # entry -> the known bug it hits


def url(template: str) -> Callable[[Ctx], Hostile]:
    return lambda c: Hostile(url=template.format(canary=c.canary))


def upload(key: str, filename: str) -> Callable[[Ctx], Hostile]:
    return lambda c: Hostile(data=c.media.files[key], filename=filename)


def script(text: str, filename: str = "episode.mp3") -> Callable[[Ctx], Hostile]:
    """A text file that FFmpeg could read as a playlist or session description naming other inputs."""
    return lambda c: Hostile(data=text.format(canary=c.canary).encode(), filename=filename)


def job(raw) -> Callable[[Ctx], Hostile]:
    return lambda c: Hostile(job=raw)


def speech_with(**options) -> Callable[[Ctx], Hostile]:
    return lambda c: Hostile(data=c.media.files["good"], filename="talk.wav", **options)


BLOCKED = "only public addresses can be fetched"
ODD_IP = "write an IP address as four decimal numbers"
NOT_AUDIO = "not a recognised audio or video file"
WORKER_ONLY = ("worker",)
GRADIO_WORDS = ""  # any message: Gradio refuses these before our code runs, in its own words (or just "Error")
CASES = [
    # schemes and argument injection
    Case("file: URL", url("file:///etc/passwd"), Expect("'file' inputs are not supported")),
    Case("ftp: URL", url("ftp://127.0.0.1:{canary}/a.mp3"), Expect("'ftp' inputs are not supported")),
    Case("data: URL", url("data:audio/mpeg;base64,SUQzBAAAAAAA"), Expect("'data' inputs are not supported")),
    Case("ffmpeg concat:", url("concat:/etc/passwd|/etc/hosts"), Expect("'concat' inputs are not supported")),
    Case("ffmpeg subfile:", url("subfile:,,start,0,end,0,,:/etc/passwd"), Expect("'subfile' inputs are not")),
    Case("gopher: to loopback", url("gopher://127.0.0.1:{canary}/_GET"), Expect("'gopher' inputs are not"), True),
    Case("leading dash", url("--exec=touch /tmp/pwned"), Expect("starts with '-'")),
    Case("leading dash then URL", url("-o/tmp/x http://127.0.0.1:{canary}/"), Expect("starts with '-'"), True),
    Case("server path", lambda c: Hostile(server_path="/etc/passwd"),
         Expect("only http and https URLs are accepted here", per_entry={"web": GRADIO_WORDS})),
    Case("relative server path", lambda c: Hostile(server_path="secret.mp3"),
         Expect("only http and https URLs are accepted here", per_entry={"web": GRADIO_WORDS})),
    # SSRF: every spelling of "this machine or its network"
    Case("loopback IP", url("http://127.0.0.1:{canary}/a.mp3"), Expect("a loopback address; " + BLOCKED), True),
    Case("loopback, upper-case scheme", url("HTTP://127.0.0.2:{canary}/a.mp3"), Expect("loopback address"), True),
    Case("localhost", url("http://localhost:{canary}/a.mp3"), Expect("a loopback name"), True),
    Case("0.0.0.0", url("http://0.0.0.0:{canary}/a.mp3"), Expect("an unspecified address"), True),
    Case("cloud metadata", url("http://169.254.169.254/latest/meta-data/"), Expect("link-local address"), True),
    Case("private 10.x", url("http://10.0.0.1:{canary}/a.mp3"), Expect("a private address; " + BLOCKED), True),
    Case("private 192.168.x", url("https://192.168.1.1/a.mp3"), Expect("a private address"), True),
    Case("CGNAT 100.64.x", url("http://100.64.0.1:{canary}/a.mp3"), Expect("carrier-grade NAT"), True),
    Case("IPv6 loopback", url("http://[::1]:{canary}/a.mp3"), Expect("loopback or IPv4-compatible address"), True),
    Case("IPv4-mapped IPv6", url("http://[::ffff:127.0.0.1]:{canary}/a.mp3"), Expect("loopback address"), True),
    Case("IPv6 unique-local", url("http://[fd00::1]:{canary}/a.mp3"), Expect("unique-local address"), True),
    Case("NAT64 of metadata", url("http://[64:ff9b::a9fe:a9fe]/a.mp3"), Expect("link-local address"), True),
    Case("decimal IP", url("http://2130706433:{canary}/a.mp3"), Expect(ODD_IP), True),
    Case("hex IP", url("http://0x7f000001:{canary}/a.mp3"), Expect(ODD_IP), True),
    Case("short IP", url("http://127.1:{canary}/a.mp3"), Expect(ODD_IP), True),
    Case("octal IP", url("http://0177.0.0.1:{canary}/a.mp3"), Expect(ODD_IP), True),
    Case("credentials in URL", url("http://user:pw@127.0.0.1:{canary}/a.mp3"), Expect("user name or password"),
         True),
    Case("SSH port", url("http://93.184.215.14:22/a.mp3"), Expect("port 22 is used by other services")),
    # files
    Case("zero-byte upload", upload("empty", "empty.mp3"), Expect("empty")),
    Case("HTML renamed .mp3", upload("html", "episode.mp3"), Expect(NOT_AUDIO)),
    Case("PNG renamed .mp3", upload("png", "cover.mp3"), Expect("no audio stream")),
    Case("random bytes .wav", upload("random", "noise.wav"), Expect(NOT_AUDIO)),
    Case("mp3 cut to 300 bytes", upload("mp3 head", "cut.mp3"), Expect("it may be truncated")),
    Case("mp3 cut in half", upload("mp3 half", "half.mp3"), Expect(duration=(2.3, 2.8))),  # decodes what is there
    Case("video with no audio", upload("video", "silent-film.mp4"), Expect("no audio stream")),
    Case("over-long audio", upload("long", "long.ogg"), Expect("the limit is 0.1 min")),
    Case("silence only", upload("silence", "silence.wav"), Expect(warning="no speech detected", empty=True)),
    Case("hiss only", upload("hiss", "hiss.wav"), Expect(warning="no speech detected", empty=True)),
    Case("8-channel speech", upload("8ch", "surround.wav"), Expect(speech=True)),
    Case("192 kHz speech", upload("192k", "studio.wav"), Expect(speech=True)),
    # media files that point FFmpeg elsewhere: only the uploaded bytes may be read
    Case("HLS playlist to loopback", script("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                                            "http://127.0.0.1:{canary}/seg.ts\n#EXT-X-ENDLIST\n"), Expect(NOT_AUDIO),
         True),
    Case("HLS playlist of a server file", script("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                                                 "file:///etc/passwd\n#EXT-X-ENDLIST\n"), Expect(NOT_AUDIO)),
    Case("ffconcat to loopback", script("ffconcat version 1.0\nfile 'http://127.0.0.1:{canary}/a.wav'\n"),
         Expect(NOT_AUDIO), True),
    Case("ffconcat of a server file", script("ffconcat version 1.0\nfile '/etc/passwd'\n"), Expect(NOT_AUDIO)),
    Case("ffconcat of itself", script("ffconcat version 1.0\nfile 'upload.mp3'\nfile 'upload.mp3'\n",
                                      "upload.mp3"), Expect(NOT_AUDIO)),
    Case("SDP to loopback", script("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
                                   "m=audio {canary} RTP/AVP 0\n"), Expect(NOT_AUDIO), True),
    Case("DASH manifest to loopback", script(
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT2S"><Period><AdaptationSet mimeType="audio/mp4"><Representation id="1" '
        'bandwidth="1000"><BaseURL>http://127.0.0.1:{canary}/a.m4a</BaseURL></Representation></AdaptationSet>'
        '</Period></MPD>'), Expect(NOT_AUDIO), True),
    # options
    Case("unsupported language", speech_with(language="Klingon"), Expect("unsupported language 'Klingon'")),
    Case("chunk length out of range", speech_with(chunk_seconds=-3),
         Expect("between 5 and 180", per_entry={"web": "less than minimum value 5"})),
    Case("context too long", speech_with(context="x" * 5000), Expect("4000")),
    # worker payloads
    Case("base64 garbage", job({"audio_base64": "@@ not base64 at all $$"}), Expect("not valid base64"),
         entries=WORKER_ONLY),
    Case("base64 over RunPod's limit", job({"audio_base64": "A" * (RUNSYNC_PAYLOAD_LIMIT + 4)}),
         Expect("pass its address as 'audio_url'"), entries=WORKER_ONLY),
    Case("base64 over MAX_DOWNLOAD_BYTES", lambda c: Hostile(job={
        "audio_base64": base64.b64encode(c.media.files["big"]).decode()}), Expect("MAX_DOWNLOAD_BYTES"),
        entries=WORKER_ONLY),
    Case("unknown job key", job({"audio_url": "https://example.com/a.mp3", "webhook": "http://127.0.0.1/"}),
         Expect("unknown input field(s): webhook"), entries=WORKER_ONLY),
    Case("URL of the wrong type", job({"audio_url": ["https://example.com/a.mp3"]}),
         Expect("'audio_url' must be a string"), entries=WORKER_ONLY),
    Case("flag of the wrong type", job({"audio_url": "https://example.com/a.mp3", "word_timestamps": "no"}),
         Expect("'word_timestamps' must be a boolean"), entries=WORKER_ONLY),
    Case("input not an object", job(["https://example.com/a.mp3"]), Expect("must be a JSON object"),
         entries=WORKER_ONLY),
    Case("both sources", job({"audio_url": "https://example.com/a.mp3", "audio_base64": "AAAA"}),
         Expect("exactly one of"), entries=WORKER_ONLY),
]


def params():
    for case in CASES:
        for entry in case.entries:
            marks = [pytest.mark.xfail(reason=case.xfail[entry], strict=True)] if entry in case.xfail else []
            yield pytest.param(case, entry, id=f"{entry}: {case.name}", marks=marks)


# -- fixtures -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def entries(pipeline, config, tmp_path_factory):
    from webui_helpers import serve

    worker = Worker(pipeline)
    with serve(config, pipeline) as app:
        yield {"core": CoreEntry(pipeline), "worker": WorkerEntry(worker),
               "web": WebEntry(app, tmp_path_factory.mktemp("uploads"))}
    worker.close()


# -- checks -------------------------------------------------------------------------------------------------------

def check(out: Outcome, expect: Expect, entry: str, media: Media, private: Path) -> None:
    phrase = expect.phrase_for(entry)
    if phrase is not None:
        assert out.error is not None, f"expected an error with {phrase!r}, got a transcript: {out.transcript}"
        assert out.error.strip() and phrase.lower() in out.error.lower(), out.error
        assert not leaks(out.error, private), (leaks(out.error, private), out.error)
        return
    assert out.error is None, out.error
    tr = out.transcript
    if expect.warning:
        assert any(w.startswith(expect.warning) for w in tr["warnings"]), tr["warnings"]
        if entry == "web":
            assert expect.warning in out.shown  # the summary under the button says so too
    if expect.empty:
        assert tr["text"] == "" and tr["segments"] == [], tr
    if expect.speech:
        assert abs(tr["duration"] - media.duration) < 0.05 and tr["text"].strip(), tr
    if expect.duration:
        assert expect.duration[0] <= tr["duration"] <= expect.duration[1] and tr["text"].strip(), tr
    for seg in tr["segments"]:
        assert 0 <= seg["start"] <= seg["end"] <= tr["duration"] + 1e-6


# -- the suite ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, entry", list(params()))
def test_hostile_input(case, entry, entries, media, canary, private_tmp):
    run = entries[entry]
    ctx = Ctx(canary.port, media)
    hits = len(canary.hits)
    out = run.run(case.make(ctx))
    check(out, case.expect, entry, media, private_tmp)
    if case.ssrf:
        assert not wait_until(lambda: len(canary.hits) > hits, 0.2), "the canary was contacted"
    assert len(canary.hits) == hits, "the canary was contacted"
    good_speech_ok(run.run(Hostile(data=media.files["good"], filename="good.wav")), media.duration)


def test_every_case_runs_somewhere():
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.entries and set(c.entries) <= set(ENTRIES) for c in CASES)
    assert sum(len(c.entries) == 3 for c in CASES) >= 25  # most cases run through all three entry points
    with pytest.raises(NotApplicable):
        CoreEntry(None).run(Hostile(job={}))


# -- the docs ----------------------------------------------------------------------------------------------------

LIMIT_SETTINGS = ("max_download_bytes", "download_timeout_s", "connect_timeout_s", "max_duration_s",
                  "allow_private_urls", "chunk_max_s", "max_tokens_per_second", "max_upload_mb", "app_queue_size",
                  "app_concurrency", "app_monitoring", "runpod_concurrency", "runpod_timeout_s")


def test_security_doc_lists_each_limit_with_its_default():
    """README.md's "Security and limits" (the README's "Security and limits") against core.config and core.remote.schema."""
    from core.fetch.sources import MAX_REDIRECTS

    text = (ROOT / "README.md").read_text().split("## Security and limits", 1)[1]
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]+)`", text, re.M))
    fields = {f.name: f.default for f in dataclasses.fields(Config)}
    limits = {n for n in fields if n.startswith("max_") or n.endswith("_timeout_s") or n.startswith("allow_")}
    assert limits <= set(LIMIT_SETTINGS), f"document the new limit(s) {limits - set(LIMIT_SETTINGS)}"
    for name in LIMIT_SETTINGS:
        value = fields[name]
        shown = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) \
            else str(value)
        assert rows.get(name.upper()) == shown, (name, rows.get(name.upper()), shown)
    lo, hi = CHUNK_SECONDS_RANGE
    for fact in (f"{MAX_CONTEXT_CHARS} characters", f"{lo:g} to {hi:g}", f"{MAX_URL_CHARS} characters",
                 f"{RUNSYNC_PAYLOAD_LIMIT // 1_000_000} MB of base64",
                 f"| redirects | {MAX_REDIRECTS} |"):
        assert fact in text, fact

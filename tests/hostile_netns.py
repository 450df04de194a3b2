"""Hostile URLs that need a public web server, run with the private-address switch OFF, as deployed.

A redirect to loopback can only be tested end to end from a first hop the guard lets through, i.e. a public
address. This script runs inside its own network and mount namespaces (see `command()`): there, a public address
(PUBLIC_IP) sits on the namespace's loopback interface, and a private /etc/hosts names it `media.example` (plus
names that resolve to loopback). Nothing outside the namespace is touched; it has no route anywhere else.

It runs every case in `CASES` through the three entry points, each followed by a good job from the public
server, then offers the web app's file input a URL (FILEDATA_URL_PATH), and writes one JSON record per (case,
entry point) to the file named by HOSTILE_OUT; test_hostile_netns.py makes the assertions. HOSTILE_ASR_DIR and
HOSTILE_ALIGNER_DIR name the tiny checkpoints.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

PUBLIC_IP = "93.184.215.14"  # a global unicast address (example.com's, once); inside the namespace it is ours
HOSTS = {"media.example": [PUBLIC_IP], "sneaky.example": ["127.0.0.1"], "dual.example": [PUBLIC_IP, "127.0.0.1"]}
SECRET = b"secret body text from the server"
MAX_DOWNLOAD_BYTES = 1_000_000
DOWNLOAD_TIMEOUT_S = 3.0

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostile_helpers import Expect, Hostile  # noqa: E402


def hosts_file(folder: Path) -> Path:
    path = folder / "hosts"
    path.write_text("127.0.0.1 localhost\n::1 localhost\n"
                    + "".join(f"{ip} {name}\n" for name, ips in HOSTS.items() for ip in ips))
    return path


def command(python: str, hosts: Path) -> list[str]:
    """unshare(1): a new network namespace (only `lo`, with PUBLIC_IP added) and a mount namespace whose
    /etc/hosts is `hosts`; mounts are private to the namespace, so the machine's own file is untouched."""
    setup = (f"mount --bind {hosts} /etc/hosts && ip link set lo up && ip addr add {PUBLIC_IP}/32 dev lo && "
             f"exec {python} {Path(__file__).resolve()}")
    return ["unshare", "--net", "--mount", "sh", "-c", setup]


# (name, path on the public server or a URL template, expectation, is_ssrf). Templates: {media} is the public
# server's base URL, {canary} the loopback canary's port.
CASES = [
    ("redirect to loopback", "/to-loopback", Expect("redirected to a private, local or reserved address"), True),
    ("redirect to a name that resolves to loopback", "/to-sneaky",
     Expect("redirected to a private, local or reserved address"), True),
    ("redirect to file:", "/to-file", Expect("redirected to a URL that is not plain http(s)"), True),
    ("name resolving to loopback", "http://sneaky.example:{canary}/a.mp3",
     Expect("resolves to a loopback address"), True),
    ("name with a public and a loopback address", "http://dual.example:{canary}/a.mp3",
     Expect("resolves to a loopback address"), True),
    ("page whose media is on loopback (yt-dlp)", "/page-loopback.html",
     Expect("leads to a private, local or malformed address"), True),
    ("HTTP 404 with a body", "/missing.mp3", Expect("answered HTTP 404"), False),
    ("endless chunked stream", "/endless.mp3", Expect("MAX_DOWNLOAD_BYTES"), False),
    ("Content-Length of 10 GB", "/huge.mp3", Expect("MAX_DOWNLOAD_BYTES"), False),
    ("gzip bomb", "/bomb.mp3", Expect("not a recognised audio or video file"), False),
    ("plain text", "/notes.txt", Expect("not audio, video or a web page"), False),
    ("trickle past the deadline", "/slow.wav", Expect("DOWNLOAD_TIMEOUT_S"), False),
]
GOOD_PATH = "/speech.wav"
# The web app's file input, given a FileData whose path is a URL (only an API client can send one).
FILEDATA_URL_PATH = "/big.mp3"


def url_for(target: str, media_base: str, canary_port: int) -> str:
    return target.format(canary=canary_port) if "://" in target else media_base + target


def serve_routes(srv, canary_port: int, speech: bytes) -> None:
    canary = f"http://127.0.0.1:{canary_port}/a.wav"
    srv.add_bytes(GOOD_PATH, speech, "audio/wav")
    srv.add_redirect("/to-loopback", canary)
    srv.add_redirect("/to-sneaky", f"http://sneaky.example:{canary_port}/a.wav")
    srv.add_redirect("/to-file", "file:///etc/passwd")
    srv.add_page("/page-loopback.html", canary)
    srv.add_status("/missing.mp3", 404, SECRET)
    srv.add_stream("/endless.mp3")
    srv.add_stream("/huge.mp3", total=2 * MAX_DOWNLOAD_BYTES, content_length=10 * 1024**3, chunked=False)
    bomb = gzip.compress(bytes(50 * MAX_DOWNLOAD_BYTES))  # 50 MB of zeros in ~50 KB: must never be inflated
    srv.add_bytes("/bomb.mp3", bomb, "audio/mpeg", headers={"Content-Encoding": "gzip"})
    srv.add_bytes("/notes.txt", SECRET * 10, "text/plain")
    srv.add_trickle("/slow.wav", speech, delay=0.2, piece=1024)
    srv.add_stream(FILEDATA_URL_PATH, total=8 * MAX_DOWNLOAD_BYTES, content_length=8 * MAX_DOWNLOAD_BYTES)


def public_media_server(host: str):
    """net_helpers.MediaServer, bound to `host` instead of 127.0.0.1."""
    import threading

    import net_helpers

    class Bound(net_helpers._Server):
        def server_bind(self) -> None:
            self.server_address = (host, 0)
            super().server_bind()

    srv = net_helpers.MediaServer()
    srv._server.server_close()
    srv._server = Bound(srv)
    srv._thread = threading.Thread(target=srv._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    return srv


T0 = time.monotonic()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    out_path = Path(os.environ["HOSTILE_OUT"])

    import numpy as np

    from audio_helpers import espeak, silence, write_audio
    from core.align.aligner import Aligner
    from core.asr.transformers_backend import TransformersAsr
    from core.config import Config
    from core.pipeline import Pipeline
    from hostile_helpers import CoreEntry, WebEntry, WorkerEntry, leftovers
    from net_helpers import Canary, wait_until
    from runpod_worker.handler import Worker
    from webui_helpers import serve

    config = Config(asr_model=os.environ["HOSTILE_ASR_DIR"], aligner_model=os.environ["HOSTILE_ALIGNER_DIR"],
                    asr_backend="transformers", device="cpu", max_duration_s=6.0, max_upload_mb=4,
                    max_download_bytes=MAX_DOWNLOAD_BYTES, download_timeout_s=DOWNLOAD_TIMEOUT_S)
    assert not config.allow_private_urls
    pipeline = Pipeline(config, asr=TransformersAsr(config), aligner=Aligner(config))
    work = Path(tempfile.mkdtemp(prefix="hostile-netns-files-"))
    samples = np.concatenate([silence(0.3), espeak("Hello there, this is a short test."), silence(0.3)])
    speech = write_audio(work / "speech.wav", samples).read_bytes()
    duration = len(samples) / 16000

    records = []
    print(f"setup {time.monotonic() - T0:.1f} s", file=sys.stderr)
    worker = Worker(pipeline)
    with Canary() as canary, public_media_server(PUBLIC_IP) as srv, serve(config, pipeline) as app:
        serve_routes(srv, canary.port, speech)
        media = f"http://media.example:{srv.port}"
        entries = [CoreEntry(pipeline), WorkerEntry(worker), WebEntry(app, work)]
        good = Hostile(url=media + GOOD_PATH)
        private_tmp = Path(tempfile.mkdtemp(prefix="hostile-netns-tmp-"))
        tempfile.tempdir = str(private_tmp)  # from here on, every temp file of a job lands here
        for name, target, _expect, ssrf in CASES:
            for entry in entries:
                rec = {"case": name, "entry": entry.name}
                t0 = time.monotonic()
                try:
                    out = entry.run(Hostile(url=url_for(target, media, canary.port)))
                    rec.update(dataclasses.asdict(out))
                    if ssrf:
                        wait_until(lambda: canary.hits, 0.3)
                    rec["canary_hits"] = len(canary.hits)
                    nxt = entry.run(good)
                    rec["next"] = dataclasses.asdict(nxt)
                except Exception:
                    rec["crash"] = traceback.format_exc()
                wait_until(lambda: not leftovers(private_tmp), 5)
                rec["leftovers"] = leftovers(private_tmp)
                rec["seconds"] = round(time.monotonic() - t0, 2)
                records.append(rec)
        web = entries[-1]
        seen = len(srv.seen)
        out = web.run(Hostile(server_path=media + FILEDATA_URL_PATH))
        records.append({"case": "__filedata_url__", "entry": "web", **dataclasses.asdict(out),
                        "fetched": [p for p in srv.paths_seen()[seen:] if p == FILEDATA_URL_PATH],
                        "next": dataclasses.asdict(web.run(good))})
        rec = {"case": "__server__", "paths_seen": srv.paths_seen(), "good_duration": duration}
        records.append(rec)
    worker.close()
    out_path.write_text(json.dumps(records))
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(private_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

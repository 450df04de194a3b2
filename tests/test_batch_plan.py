"""Planning a batch (issue 18): folders, list files and podcast feeds -> named items, and every clear message.

No model loads here: inputs are expanded into items and problems, feeds are served on loopback by a real HTTP
server and read with the real feedparser, durations come from real WAV headers through PyAV.
"""
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audio_helpers import silence, write_audio
from core.batch import collect, plan_batch
from core.batch.feeds import PEEK_BYTES, enclosure_problem, parse_since
from core.batch.record import ItemResult, Record, read_record
from core.config import Config
from core.errors import InputError
from net_helpers import MediaServer, wav_bytes

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = Config(allow_private_urls=True)
UNSAFE = set('/\\:*?"<>|')


def wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_audio(path, silence(seconds))


@pytest.fixture
def server():
    with MediaServer() as srv:
        yield srv


# --- folders
def test_a_folder_is_walked_in_path_order_keeping_subfolders(tmp_path):
    root = tmp_path / "show"
    lengths = {"ep02.wav": 1.0, "ep01.wav": 0.5, "season 1/ep03.WAV": 1.5, "season 1/extra/bonus.wav": 0.75,
               "season 2/ep01.wav": 2.0}
    for rel, seconds in lengths.items():
        wav(root / rel, seconds)
    wav(root / ".hidden.wav", 0.3)
    wav(root / ".git" / "inside.wav", 0.3)
    wav(root / "season 1" / ".cache" / "x.wav", 0.3)
    (root / "notes.txt").write_text("not audio")
    (root / "season 2" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "nothing here").mkdir()

    plan = collect([str(root)], Config())
    expected = sorted(lengths)  # plain path order: "ep01" < "ep02" < "season 1/..." < "season 2/..."
    assert plan.problems == [] and plan.expanded
    assert [i.name for i in plan.items] == [str(Path(rel).with_suffix("")) for rel in expected]
    assert [Path(i.source) for i in plan.items] == [root / rel for rel in expected]
    for item, rel in zip(plan.items, expected):
        assert item.duration_s == pytest.approx(lengths[rel], abs=0.05), item
        assert item.refused == ""
    assert plan.known_duration_s == pytest.approx(sum(lengths.values()), abs=0.2)
    assert plan.unknown_durations == 0


def test_an_empty_folder_or_one_without_media_is_named_and_the_rest_still_runs(tmp_path):
    empty, papers = tmp_path / "empty", tmp_path / "papers"
    empty.mkdir()
    (papers / "sub").mkdir(parents=True)
    (papers / "sub" / "a.pdf").write_bytes(b"%PDF")
    (papers / ".hidden.wav").write_bytes(b"RIFF")
    good, flac = wav(tmp_path / "good.wav", 0.5), wav(tmp_path / "dup" / "good.flac", 0.6)
    plan = collect([str(empty), str(papers), str(flac.parent), str(good), str(tmp_path / "missing.mp3")], Config())
    assert [(Path(i.source), i.name) for i in plan.items] == [(flac, "good"), (good, "good-2")]  # one name, numbered
    assert plan.items[0].duration_s == pytest.approx(0.6, abs=0.05)
    assert len(plan.problems) == 3
    assert plan.problems[0].startswith(f"{empty}: no audio or video files")
    assert plan.problems[1].startswith(f"{papers}: no audio or video files")
    assert str(tmp_path / "missing.mp3") in plan.problems[2] and "neither an existing file" in plan.problems[2]


# --- list files
def test_a_list_file_resolves_paths_keeps_urls_and_numbers_bad_lines(tmp_path):
    lists, other = tmp_path / "lists", tmp_path / "other"
    ep1, ep2, ep3 = wav(lists / "ep1.wav", 0.5), wav(other / "ep2.wav", 1.0), wav(tmp_path / "abs" / "ep3.wav", 1.5)
    wav(lists / "sub" / "inner.wav", 0.25)
    (lists / "notes.pdf").write_bytes(b"%PDF")
    url = "http://example.com/audio/show.mp3?x=1"
    lines = ["ep1.wav", "# my episodes", "", "../other/ep2.wav", "   # an indented comment", str(ep3), url,
             "missing.wav", "notes.pdf", "sub", "  "]
    listing = lists / "mine.list"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")  # with a BOM, as Notepad writes it
    number = {line: n for n, line in enumerate(lines, 1)}

    plan = collect([str(listing)], Config())
    assert plan.expanded
    assert [i.name for i in plan.items] == ["ep1", "ep2", "ep3", "show", "inner"]
    assert [Path(i.source).resolve() for i in plan.items if "://" not in i.source] == \
        [ep1.resolve(), ep2.resolve(), ep3.resolve(), (lists / "sub" / "inner.wav").resolve()]
    assert plan.items[3].source == url and plan.items[3].duration_s is None
    assert plan.items[0].origin == f"{listing}:{number['ep1.wav']}"
    assert plan.items[1].duration_s == pytest.approx(1.0, abs=0.05)
    assert len(plan.problems) == 2
    missing, pdf = plan.problems
    assert str(listing) in missing and f"line {number['missing.wav']}:" in missing and "missing.wav" in missing
    assert f"line {number['notes.pdf']}:" in pdf and "not an audio or video file" in pdf


def test_empty_and_non_utf8_lists_say_so_and_other_inputs_still_run(tmp_path):
    good, other = wav(tmp_path / "good.wav", 0.5), wav(tmp_path / "m" / "other.wav", 0.5)
    (tmp_path / "m" / "p.m3u").write_text("#EXTM3U\n#EXTINF:1,Other\nother.wav\n")  # directives are comments
    (tmp_path / "empty.txt").write_text("# only a comment\n\n   \n")
    (tmp_path / "latin.lst").write_bytes("épisode.wav\n".encode("latin-1"))
    (tmp_path / "wide.txt").write_bytes("good.wav\n".encode("utf-16"))
    plan = collect([str(tmp_path / n) for n in ("empty.txt", "latin.lst", "wide.txt", "m/p.m3u", "good.wav")],
                   Config())
    assert [Path(i.source) for i in plan.items] == [other, good]
    empty, latin, wide = plan.problems
    assert empty.startswith(str(tmp_path / "empty.txt")) and "empty" in empty
    assert latin.startswith(str(tmp_path / "latin.lst")) and "not UTF-8" in latin
    assert wide.startswith(str(tmp_path / "wide.txt")) and "not UTF-8" in wide


# --- feeds
def when(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.timezone.utc)


def rss(entries: list[dict]) -> bytes:
    """RSS 2.0 with itunes tags; each entry: title, date (datetime or None), url, type, duration."""
    out = []
    for e in entries:
        date = f"<pubDate>{e['date']:%a, %d %b %Y %H:%M:%S GMT}</pubDate>" if e.get("date") else ""
        enc = f'<enclosure url="{e["url"]}" length="9" type="{e.get("type", "audio/mpeg")}"/>' if e.get("url") else ""
        length = f"<itunes:duration>{e['duration']}</itunes:duration>" if e.get("duration") else ""
        out.append(f"<item><title>{e['title']}</title>{date}{enc}{length}{e.get('extra', '')}</item>")
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
            'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>Show</title>'
            + "".join(out) + "</channel></rss>").encode()


def show(srv: MediaServer) -> list[dict]:
    """A feed in no particular order; `want` is each audio episode's expected place, newest first."""
    return [
        dict(title="Old one", date=when("2023-12-31"), url=srv.url("/media/old.mp3"), duration="45:30", want=4),
        dict(title="Part 1/2: Why?", date=when("2024-03-05"), url="media/p1.mp3", duration="1:02:03", want=0),
        dict(title="Undated", date=None, url=srv.url("/media/u.mp3"), want=5),
        dict(title="No audio", date=when("2024-04-01")),
        dict(title="Cover only", date=when("2024-04-02"), url=srv.url("/cover.jpg"), type="image/jpeg"),
        dict(title="Same", date=when("2024-02-01", 8), url=srv.url("/media/s8.mp3"), want=3),
        dict(title="Video", date=when("2024-02-10"), url=srv.url("/media/v.mp4"), type="", want=1),
        dict(title="Same", date=when("2024-02-01", 10), url=srv.url("/media/s10.mp3"), duration="1800", want=2),
    ]


def seconds_of(duration: str | None) -> float | None:  # "1:02:03" -> 3723.0
    return sum(float(p) * 60 ** n for n, p in enumerate(reversed(duration.split(":")))) if duration else None


def test_an_rss_feed_gives_its_audio_episodes_newest_first(server):
    entries = show(server)
    url = server.add_bytes("/feeds/show.xml", rss(entries), "application/rss+xml; charset=utf-8")
    plan = collect([url], PRIVATE)
    audio = sorted((e for e in entries if "want" in e), key=lambda e: e["want"])
    assert plan.problems == [] and plan.expanded
    assert [i.title for i in plan.items] == [e["title"] for e in audio]
    assert [i.duration_s for i in plan.items] == [seconds_of(e.get("duration")) for e in audio]
    assert [i.published for i in plan.items] == [e["date"].date().isoformat() if e["date"] else "" for e in audio]
    assert plan.items[0].source == server.url("/feeds/media/p1.mp3")  # relative to the feed's URL
    assert all(i.origin == url and i.refused == "" for i in plan.items)
    part, video, same, same2, old, undated = (i.name for i in plan.items)
    assert part.startswith("2024-03-05 Part 1") and part.rstrip("_").endswith("Why") and not UNSAFE & set(part)
    assert (same, same2) == ("2024-02-01 Same", "2024-02-01 Same-2")
    assert (video, old, undated) == ("2024-02-10 Video", "2023-12-31 Old one", "Undated")
    assert server.paths_seen() == ["/feeds/show.xml"]  # planning never touches an enclosure

    server.add_redirect("/go", "/feeds/show.xml")  # relative enclosures follow the feed's final URL
    assert collect([server.url("/go")], PRIVATE).items[0].source == server.url("/feeds/media/p1.mp3")


def test_limit_and_since_pick_the_newest_episodes(server):
    entries = show(server)
    url = server.add_bytes("/f.xml", rss(entries), "application/rss+xml")
    dated = sorted((e for e in entries if "want" in e and e["date"]), key=lambda e: e["date"], reverse=True)
    assert [i.title for i in collect([url], PRIVATE, limit=2).items] == [e["title"] for e in dated[:2]]
    day = dt.date(2024, 2, 1)
    recent = [e["title"] for e in dated if e["date"].date() >= day]
    assert [i.title for i in collect([url], PRIVATE, since=parse_since("2024-02-01")).items] == recent
    assert [i.title for i in collect([url], PRIVATE, since=day, limit=1).items] == recent[:1]
    late = collect([url], PRIVATE, since=dt.date(2030, 1, 1))
    assert late.items == [] and late.problems == [f"{url}: no episode was published on or after 2030-01-01"]


@pytest.mark.parametrize("text", ["notadate", "2024-02-30", "01/02/2024", ""])
def test_a_bad_since_is_a_clear_input_error(text):
    with pytest.raises(InputError, match="YYYY-MM-DD") as e:
        parse_since(text)
    assert repr(text) in str(e.value)


def test_an_atom_feed_uses_its_enclosure_links(server):
    entry = ('<entry><title>{t}</title><id>urn:{t}</id><updated>{d}T09:00:00Z</updated>'
             '<link rel="alternate" href="https://example.com/{t}"/>{enc}</entry>')
    body = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            '<id>urn:a</id><updated>2024-05-01T00:00:00Z</updated>'
            + entry.format(t="First", d="2024-01-02", enc='<link rel="enclosure" type="audio/x-m4a" href="a/1.m4a"/>')
            + entry.format(t="Page", d="2024-06-01", enc="")
            + entry.format(t="Third", d="2024-03-04", enc=f'<link rel="enclosure" href="{server.url("/3.ogg")}"/>')
            + "</feed>")
    url = server.add_bytes("/podcast/atom", body.encode(), "text/xml")
    plan = collect([url], PRIVATE)
    assert plan.problems == [] and [(i.name, i.source) for i in plan.items] == [
        ("2024-03-04 Third", server.url("/3.ogg")), ("2024-01-02 First", server.url("/podcast/a/1.m4a"))]


@pytest.mark.parametrize("ctype", ["application/rss+xml", "text/xml", "application/octet-stream", None])
def test_a_feed_is_known_by_its_type_or_its_rss_tag(server, ctype):
    entries = show(server)
    url = server.add_bytes("/x", b"\xef\xbb\xbf\n  " + rss(entries), ctype)
    assert len(collect([url], PRIVATE).items) == sum("want" in e for e in entries)


def test_a_feed_longer_than_the_peek_is_read_whole(server):
    entries = [dict(title=f"Episode {n}", date=when("2024-01-01") + dt.timedelta(days=n), url=f"/e/{n}.mp3",
                    extra=f"<description>{'words ' * 100}</description>") for n in range(200)]
    body = rss(entries)
    assert len(body) > 2 * PEEK_BYTES
    plan = collect([server.add_bytes("/big.xml", body, "application/rss+xml")], PRIVATE)
    assert len(plan.items) == 200 and plan.items[0].title == "Episode 199" and plan.items[-1].title == "Episode 0"


def test_audio_urls_and_pages_are_single_items_not_feeds(server):
    audio = server.add_bytes("/clips/take1.wav", wav_bytes(0.5), "audio/wav")
    page = server.add_page("/episode.html", server.url("/clips/take1.wav"))
    plan = collect([audio, page], PRIVATE)
    assert plan.problems == [] and not plan.expanded
    assert [(i.source, i.name, i.refused) for i in plan.items] == [(audio, "take1", ""), (page, "episode", "")]


NOT_A_FEED = "this is not an RSS or Atom feed"


@pytest.mark.parametrize("body,ctype,why", [
    (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>'
     b'https://example.com/</loc></url></urlset>', "application/xml", f"{NOT_A_FEED} (it is XML of another kind)"),
    (b'<?xml version="1.0"?><urlset><url><loc>https://example.com/</lo', "application/xml", f"{NOT_A_FEED} (it is not"),
    (b"<html><body><p>a page that says it is XML</p></body></html>", "text/xml", NOT_A_FEED),
    (rss([dict(title="Text only", date=when("2024-01-01"))]), "application/rss+xml",
     "this feed lists no episodes with an audio or video enclosure"),
])
def test_xml_that_is_not_a_feed_or_has_no_audio_says_so(server, body, ctype, why):
    url = server.add_bytes("/feed", body, ctype)
    plan = collect([url], PRIVATE)
    assert plan.items == [] and len(plan.problems) == 1 and plan.problems[0].startswith(f"{url}: {why}")


# --- private enclosures
def test_enclosures_on_private_addresses_are_refused_except_the_feeds_own_host(server):
    urls = {"own": server.url("/a.mp3"), "lan": "http://10.1.2.3/ep.mp3", "meta": "http://169.254.169.254/x.mp3",
            "loopname": server.url("/b.mp3", host="localhost"), "public": "http://93.184.216.34/pub.mp3"}
    entries = [dict(title=k, date=when("2024-01-01") + dt.timedelta(days=n), url=u) for n, (k, u) in
               enumerate(urls.items())]
    plan = collect([server.add_bytes("/feed.xml", rss(entries), "application/rss+xml")],
                   dataclasses.replace(Config(), allow_private_urls=True))
    refused = {i.title: i.refused for i in plan.items}
    assert set(refused) == set(urls) and plan.problems == []
    assert refused["own"] == "" and refused["public"] == ""
    assert "non-public address" in refused["lan"] and "10.1.2.3" in refused["lan"] and "private" in refused["lan"]
    assert "169.254.169.254" in refused["meta"] and "link-local" in refused["meta"]
    assert "localhost" in refused["loopname"]
    assert plan.unknown_durations == 2  # refused items are not counted as work to do
    assert server.paths_seen() == ["/feed.xml"]


def test_without_allow_private_a_loopback_feed_is_not_read_at_all(server):
    url = server.add_bytes("/feed.xml", rss(show(server)), "application/rss+xml")
    plan = collect([url], Config(allow_private_urls=False))
    # Not read here: one item, which the transcriber refuses with its own message.
    assert [(i.source, i.name, i.refused) for i in plan.items] == [(url, "feed", "")] and plan.problems == []
    assert server.seen == []
    assert "non-public" in enclosure_problem(server.url("/a.mp3"), "127.0.0.1", Config(allow_private_urls=False))


# --- batch.json
def test_the_record_is_replaced_whole_and_a_later_record_keeps_earlier_entries(tmp_path):
    out = tmp_path / "out"
    first = Record(out, read_record(out))
    first.update(ItemResult(source="a.wav", name="a", status="failed", error="boom", duration_s=3.0))
    inode = os.stat(out / "batch.json").st_ino
    first.update(ItemResult(source="c.wav", name="sub/c", status="cancelled"))
    assert os.stat(out / "batch.json").st_ino != inode  # a new file replaced the old one, never written in place
    assert sorted(p.name for p in out.iterdir()) == ["batch.json"]

    second = Record(out, read_record(out))
    assert second.existed
    second.update(ItemResult(source="b.wav", name="b", status="done", duration_s=2.0))
    second.update(ItemResult(source="a.wav", name="a", status="skipped"))
    entries = read_record(out)
    assert [(e.name, e.status) for e in entries] == [("a", "skipped"), ("sub/c", "cancelled"), ("b", "done")]
    assert entries[0].duration_s == 3.0  # a skip keeps what the run that wrote the files measured
    data = json.loads((out / "batch.json").read_text())
    assert data["counts"]["skipped"] == 1 and data["counts"]["cancelled"] == 1 and data["counts"]["failed"] == 0

    Record(tmp_path / "quiet", [], keep=False).update(ItemResult(source="x", name="x", status="done"))
    assert not (tmp_path / "quiet").exists()


def test_retry_failed_plans_only_failed_and_cancelled_items(tmp_path):
    out = tmp_path / "out"
    record = Record(out, [])
    for name, status in [("a", "failed"), ("b", "done"), ("c", "cancelled"), ("d", "refused")]:
        record.update(ItemResult(source=f"{name}.wav", name=name, status=status, origin="list.txt:1"))
    plan, _ = plan_batch([], out, Config(), retry_failed=True)
    assert [(i.name, i.source) for i in plan.items] == [("a", "a.wav"), ("c", "c.wav")] and plan.problems == []
    folder = tmp_path / "in"
    for name in "ab":
        wav(folder / f"{name}.wav", 0.3)
    plan, _ = plan_batch([str(folder)], out, Config(), retry_failed=True)
    assert [i.name for i in plan.items] == ["a"]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"items": "abc"}', '{"items": [1]}',
                                  '{"items": [{"name": "x"}]}',
                                  '{"items": [{"source": "s", "name": ["x"], "status": "done"}]}'])
def test_a_damaged_record_is_a_clear_input_error(tmp_path, text):
    (tmp_path / "batch.json").write_text(text)
    with pytest.raises(InputError, match="is not a batch record this program wrote"):
        read_record(tmp_path)


# --- the CLI
def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m core` with a model folder that does not exist: any run that loads a model fails with 2."""
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                               "ASR_MODEL": str(cwd / "no-model"), "ASR_BACKEND": "transformers", **env})


def test_cli_an_empty_folder_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    run = cli("empty", cwd=tmp_path)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("error: empty: no audio or video files") and len(run.stderr.splitlines()) == 1


def test_cli_names_each_bad_list_line_and_still_runs_the_good_ones(tmp_path):
    wav(tmp_path / "ep1.wav", 0.5)
    (tmp_path / "readme.md").write_text("hi")
    (tmp_path / "eps.txt").write_text("# mine\nep1.wav\n\ngone.wav\nreadme.md\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ep1.txt").write_text("done before")  # ep1 is skipped, so no model loads (there is none)
    run = cli("eps.txt", "-q", "--format", "txt", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: eps.txt line 4: 'gone.wav' is neither an existing file nor an http(s) URL",
                      "error: eps.txt line 5: 'readme.md' is not an audio or video file (by its extension)"]
    assert "1 skipped" in run.stderr and "input problem: eps.txt line 4" in run.stderr and run.stdout == ""
    assert [(e.name, e.status) for e in read_record(tmp_path / "out")] == [("ep1", "skipped")]
    assert (tmp_path / "out" / "ep1.txt").read_text() == "done before"


def test_cli_a_url_serving_xml_that_is_not_a_feed(tmp_path, server):
    url = server.add_bytes("/sitemap.xml", b'<?xml version="1.0"?><urlset><url><loc>x</loc></url></urlset>',
                           "application/xml")
    run = cli(url, "-q", cwd=tmp_path, ALLOW_PRIVATE_URLS="1")
    assert run.returncode == 1
    assert run.stderr.startswith(f"error: {url}: this is not an RSS or Atom feed")


@pytest.mark.parametrize("args,message", [
    (["x.wav", "--since", "notadate"], "--since takes a day as YYYY-MM-DD, not 'notadate'"),
    (["x.wav", "--limit", "0"], "--limit must be at least 1"),
    (["x.wav", "--parallel", "0"], "--parallel must be at least 1"),
    ([], "give at least one INPUT"),
])
def test_cli_bad_arguments_are_usage_errors(tmp_path, args, message):
    run = cli(*args, cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr.splitlines()[-1]


def test_cli_retry_failed_without_a_record_fails_and_with_nothing_failed_succeeds(tmp_path):
    run = cli("--retry-failed", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.startswith("error: nothing to retry") and "out" in run.stderr and "batch.json" in run.stderr
    Record(tmp_path / "out", []).update(ItemResult(source="a.wav", name="a", status="done"))
    run = cli("--retry-failed", "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "nothing to retry" in run.stderr and "error" not in run.stderr


def test_cli_a_damaged_record_stops_before_anything_runs(tmp_path):
    wav(tmp_path / "a.wav", 0.3)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "batch.json").write_text('{"items": [')
    run = cli("a.wav", "-o", "out", cwd=tmp_path)
    assert run.returncode == 2
    assert f"{Path('out') / 'batch.json'} is not a batch record this program wrote" in run.stderr

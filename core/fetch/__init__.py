"""Fetch: a path, an http(s) URL, a page yt-dlp understands, or raw bytes -> one local file the caller owns.

`sources` opens every kind of input as a temporary file that is always removed; `url_guard` decides which hosts
may be reached; `proxy` puts yt-dlp's traffic through that guard; `pages` asks yt-dlp for a page's audio.
"""

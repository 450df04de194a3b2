"""File inputs that take uploads only, never a link.

Gradio fetches a FileData whose `path` is an http(s) URL itself, before any of our code runs (safehttpx: private
addresses refused, but no size or time limit, and the whole body in memory), so an API caller could make the file
input download anything past MAX_DOWNLOAD_BYTES, DOWNLOAD_TIMEOUT_S and MAX_UPLOAD_MB. These subclasses refuse
that at the one place Gradio moves an input into its cache; links go through the Link tab, where core's guarded
fetcher applies every limit. `is_template` keeps Gradio's own front-end component for each.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from gradio_client import utils as client_utils

LINK_REFUSED = ("The file input takes an uploaded file, not a link. To transcribe from a link, put it in the "
                "Link tab (or send it as the url input).")


def _uploads_only(component: type) -> type:
    """`component` with its move-into-cache step refusing links; `is_template` keeps the parent's front end."""

    class UploadsOnly(component):
        is_template = True

        async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
            _refuse_links(url_or_file_path)
            return await super().async_move_resource_to_block_cache(url_or_file_path)

        def move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
            _refuse_links(url_or_file_path)
            return super().move_resource_to_block_cache(url_or_file_path)

    UploadsOnly.__name__ = UploadsOnly.__qualname__ = f"Upload{component.__name__}"
    UploadsOnly.__doc__ = f"gr.{component.__name__} that accepts only files uploaded to this server."
    return UploadsOnly


def _refuse_links(value) -> None:
    if isinstance(value, str) and client_utils.is_http_url_like(value):
        raise gr.Error(LINK_REFUSED, print_exception=False)


UploadFile = _uploads_only(gr.File)
UploadAudio = _uploads_only(gr.Audio)  # the microphone tab

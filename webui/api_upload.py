"""A multipart upload read for the OpenAI-compatible API: the size limit counted while the body streams in.

`read_form(request, max_bytes)` refuses a body whose Content-Length is already over the limit before reading it, and
stops reading the moment the streamed body passes it (a client may send no length, or a false one): TooLargeError
either way. Parts are spooled by Starlette into anonymous temporary files (gone when closed); `saved(form, folder)`
copies the one `file` part into the caller's temporary folder, which the caller removes.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import AsyncIterator

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from core.errors import InputError, TooLargeError

FIELDS_ALLOWANCE = 64 * 1024  # the form's other fields and the multipart framing, beyond the file itself
MAX_FIELDS = 32


def too_large(max_upload_mb: int) -> TooLargeError:
    return TooLargeError(f"the file is too large: the limit is {max_upload_mb} MB (MAX_UPLOAD_MB)")


async def read_form(request: Request, max_upload_mb: int) -> FormData:
    """The request's multipart form, at most one file of `max_upload_mb` MB; InputError for a body that is not one."""
    limit = max_upload_mb * 1024 * 1024 + FIELDS_ALLOWANCE
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(max_upload_mb)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InputError("send the file as multipart/form-data (a `file` field and the options as fields)")

    async def counted() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise too_large(max_upload_mb)
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=1, max_fields=MAX_FIELDS)
    try:
        return await parser.parse()
    except MultiPartException as e:
        raise InputError(f"the upload is not a valid multipart form: {e.message}") from None


def close_form(form: FormData | None) -> None:
    """Close (and so delete) every spooled part."""
    for _, value in (form.multi_items() if form is not None else ()):
        if isinstance(value, UploadFile):
            value.file.close()


def saved(form: FormData, folder: str) -> tuple[Path, str]:
    """The `file` part written to `folder` under a safe name; returns (path, the name the client gave)."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InputError("the request has no `file` field holding the audio")
    name = Path(upload.filename or "audio").name[-120:] or "audio"
    suffix = Path(name).suffix[:12]
    path = Path(folder) / f"upload{suffix if suffix.isascii() else ''}"
    upload.file.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1024 * 1024)
    if path.stat().st_size == 0:
        raise InputError("the uploaded file is empty")
    return path, name

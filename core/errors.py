"""Errors a user can act on. Every message is safe to show: no stack trace, host name or local path."""


class CoreError(Exception):
    """Base of every error `core` raises on purpose; str(e) is the user-facing message."""


class InputError(CoreError, ValueError):
    """Bad options or a malformed input (unknown language, bad base64, unsupported URL scheme...)."""


class FetchError(CoreError):
    """A URL could not be fetched (unreachable, HTTP error, timeout, blocked address)."""


class BlockedURLError(FetchError):
    """The URL points somewhere this service must not connect to (private, loopback, metadata...)."""


class TooLargeError(CoreError):
    """The input exceeds a configured limit (bytes, duration, payload size)."""

    @classmethod
    def over_download_limit(cls, max_bytes: int, what: str = "download") -> "TooLargeError":
        """Input past MAX_DOWNLOAD_BYTES, worded the same wherever the cap is hit (URL, page, proxy, base64)."""
        size, unit = float(max_bytes), "bytes"
        for unit in ("bytes", "KB", "MB", "GB"):
            if size < 1024 or unit == "GB":
                break
            size /= 1024
        shown = f"{max_bytes} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        return cls(f"the {what} is too large: the limit is {shown} (MAX_DOWNLOAD_BYTES)")


class DecodeError(CoreError):
    """The input is not decodable audio (empty, corrupt, no audio stream)."""


class ModelError(CoreError):
    """The model failed in a way that is not the input's fault (out of memory, dead engine)."""


class BusyError(CoreError):
    """The service is at capacity and did not start the job; try again later (HTTP 429/503 for an API)."""


class JobCancelled(BaseException):
    """The job was cancelled: by its caller (a cancel event, a closed page) or on a remote endpoint.

    A BaseException, like asyncio.CancelledError, so that no `except Exception` on the way (a per-chunk fallback, a
    listener guard) turns it into an ordinary failure; `finally` blocks and the temp-file owners still run.
    """

    def __init__(self, message: str = "the job was cancelled") -> None:
        super().__init__(message)

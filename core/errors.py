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


class DecodeError(CoreError):
    """The input is not decodable audio (empty, corrupt, no audio stream)."""


class ModelError(CoreError):
    """The model failed in a way that is not the input's fault (out of memory, dead engine)."""

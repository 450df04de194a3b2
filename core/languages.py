"""The 30 languages Qwen3-ASR names, their ISO codes, and the 11 the forced aligner covers."""
from __future__ import annotations

from core.errors import InputError

# Name as the model writes it after "language " in its output -> ISO 639-1 code (639-3 where 639-1 has none).
LANGUAGES: dict[str, str] = {
    "Chinese": "zh", "English": "en", "Cantonese": "yue", "Arabic": "ar", "German": "de", "French": "fr",
    "Spanish": "es", "Portuguese": "pt", "Indonesian": "id", "Italian": "it", "Korean": "ko", "Russian": "ru",
    "Thai": "th", "Vietnamese": "vi", "Japanese": "ja", "Turkish": "tr", "Hindi": "hi", "Malay": "ms",
    "Dutch": "nl", "Swedish": "sv", "Danish": "da", "Finnish": "fi", "Polish": "pl", "Czech": "cs",
    "Filipino": "fil", "Persian": "fa", "Greek": "el", "Romanian": "ro", "Hungarian": "hu", "Macedonian": "mk",
}
_EXTRA_CODES = {"tl": "Filipino", "zh-cn": "Chinese", "zh-tw": "Chinese", "pt-br": "Portuguese", "fa-ir": "Persian"}

# Qwen3-ForcedAligner-0.6B covers these; other languages get segment-level times only.
ALIGNER_LANGUAGES = frozenset(
    {"Chinese", "English", "Cantonese", "French", "German", "Italian", "Japanese", "Korean", "Portuguese",
     "Russian", "Spanish"}
)
# Written without spaces between words: the aligner times each character, and chunk texts join with no space.
CHARACTER_LANGUAGES = frozenset({"Chinese", "Japanese", "Cantonese", "Thai"})

_BY_KEY = {name.lower(): name for name in LANGUAGES}
_BY_KEY.update({code: name for name, code in LANGUAGES.items()})
_BY_KEY.update(_EXTRA_CODES)


def normalize_language(value: str | None) -> str | None:
    """Map a user's language ('auto', None, a name in any case, or an ISO code) to a model name or None (detect)."""
    if value is None:
        return None
    key = str(value).strip().lower().replace("_", "-")
    if key in ("", "auto", "none", "detect"):
        return None
    if key in _BY_KEY:
        return _BY_KEY[key]
    choices = ", ".join(f"{n} ({c})" for n, c in LANGUAGES.items())
    raise InputError(f"unsupported language {str(value)[:40]!r}; use 'auto' or one of: {choices}")


def language_from_model(raw: str) -> str:
    """Best-effort name for what the model wrote after 'language ' (it may write an unlisted language)."""
    key = raw.strip().lower()
    return _BY_KEY.get(key, raw.strip().title() or "unknown")

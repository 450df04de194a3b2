import pytest

from core.errors import InputError
from core.languages import (ALIGNER_LANGUAGES, LANGUAGES, language_from_model, normalize_language)


def test_thirty_languages_with_unique_codes():
    assert len(LANGUAGES) == 30
    assert len(set(LANGUAGES.values())) == 30
    assert ALIGNER_LANGUAGES <= set(LANGUAGES)
    assert len(ALIGNER_LANGUAGES) == 11


@pytest.mark.parametrize("value, expected", [
    (None, None), ("auto", None), ("AUTO", None), ("", None),
    ("english", "English"), ("ENGLISH", "English"), ("en", "English"), ("EN", "English"),
    ("zh", "Chinese"), ("yue", "Cantonese"), ("fil", "Filipino"), ("tl", "Filipino"), ("mk", "Macedonian"),
    (" German ", "German"), ("pt-BR", "Portuguese"), ("pt_br", "Portuguese"),
])
def test_normalize(value, expected):
    assert normalize_language(value) == expected


@pytest.mark.parametrize("value", ["klingon", "xx", "english!", "e", "auto-detect"])
def test_unknown_language_lists_the_choices(value):
    with pytest.raises(InputError) as err:
        normalize_language(value)
    msg = str(err.value)
    assert "auto" in msg and "English (en)" in msg and "Macedonian (mk)" in msg


def test_model_output_names():
    assert language_from_model("English") == "English"
    assert language_from_model(" chinese ") == "Chinese"
    assert language_from_model("Latin") == "Latin"  # unlisted languages pass through, title-cased

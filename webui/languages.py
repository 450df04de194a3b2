"""The language box: each language shown with its ISO code, and what a typed value means.

Gradio's dropdown filters its choices by substring and Enter takes the first match, so typing `es` picked
Cantonese, `de` Auto-detect and `sw` Swedish. `ENTER_JS` (run on page load) takes Enter first when the text was
typed: an exact code or name, else the one name it begins (three letters or more), is selected; anything else
stays as typed (a custom value), and `resolve_language` on the server maps it or refuses it with a message. Arrow
keys and clicks keep Gradio's own behaviour. Typed values that reach the server by other ways (leaving the box,
the API) go through the same `resolve_language`.
"""
from __future__ import annotations

import json
import re

from core.errors import InputError
from core.languages import LANGUAGES, normalize_language

AUTO = "Auto-detect"
ELEM_ID = "language-box"
# (label, value): the value is the name, which core and API callers already use.
CHOICES = [(AUTO, AUTO)] + [(f"{name} ({code})", name) for name, code in sorted(LANGUAGES.items())]
NAMES = [value for _, value in CHOICES]  # what a beginning is matched against (both here and in the script)
# Two letters are an ISO code, never the beginning of a name: "sw" (Swahili) is not Swedish.
PREFIX_MIN = 3
_LABEL = re.compile(r"^(.+?)\s*\(([a-z-]+)\)$", re.IGNORECASE)


def resolve_language(value: str | None) -> str | None:
    """The model's name for what the box or an API caller sent, or None (detect).

    Accepts Auto-detect, a name or ISO code in any case (core.languages), a label such as "Spanish (es)", and the
    beginning (three letters or more) of exactly one name ("spa"). Anything else is core's InputError, which names
    the choices.
    """
    text = str(value or "").strip()
    if text.lower() in ("", AUTO.lower()):
        return None
    labelled = _LABEL.match(text)
    if labelled:
        text = labelled.group(1)
    try:
        return normalize_language(text)
    except InputError:
        starts = [name for name in NAMES if name.lower().startswith(text.lower())]
        if len(text) >= PREFIX_MIN and len(starts) == 1:
            return None if starts[0] == AUTO else starts[0]
        raise


def _exact_keys() -> dict[str, int]:
    """What the script matches exactly: every label, name and code (lower case) -> its index in CHOICES."""
    keys = {"auto": 0}
    for i, (label, value) in enumerate(CHOICES):
        keys[label.lower()] = keys[value.lower()] = i
        if value in LANGUAGES:
            keys[LANGUAGES[value]] = i
    return keys


ENTER_JS = """
() => {
  const CHOICES = %(choices)s, NAMES = %(names)s, EXACT = %(exact)s, BOX = "#%(elem_id)s";
  const PREFIX_MIN = %(prefix_min)d;
  const NAV = ["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"];
  let typed = false;  // text was typed since the last arrow key: Enter means what was typed

  // The one choice that `text` names: an exact label, name or code, else the only name it begins; or -1.
  function match(text) {
    const key = text.trim().toLowerCase();
    if (!key) return -1;
    if (key in EXACT) return EXACT[key];
    if (key.length < PREFIX_MIN) return -1;
    const starts = NAMES.flatMap((name, i) => name.toLowerCase().startsWith(key) ? [i] : []);
    return starts.length === 1 ? starts[0] : -1;
  }
  const inBox = (el) => el instanceof HTMLInputElement && el.closest(BOX) !== null;

  document.addEventListener("input", (e) => { if (inBox(e.target) && e.isTrusted) typed = true; }, true);
  document.addEventListener("focus", (e) => {
    if (!inBox(e.target)) return;
    typed = false;
    e.target.select();  // typing replaces the shown choice instead of adding to it
  }, true);
  document.addEventListener("keydown", (e) => {
    const input = e.target;
    if (!inBox(input) || !e.isTrusted) return;
    if (NAV.includes(e.key)) { typed = false; return; }
    if (e.key !== "Enter" || !typed) return;
    typed = false;
    e.preventDefault();
    e.stopImmediatePropagation();  // not Gradio's "first substring match"
    const i = match(input.value);
    if (i >= 0) {
      input.value = CHOICES[i][0];  // an exact label: leaving the box selects that choice
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
    input.blur();  // no match: the text stays as typed, and the server says what is wrong with it
  }, true);
}
"""
ENTER_JS = ENTER_JS % {"choices": json.dumps(CHOICES), "names": json.dumps(NAMES), "exact": json.dumps(_exact_keys()),
                       "elem_id": ELEM_ID, "prefix_min": PREFIX_MIN}

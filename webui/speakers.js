/*
 * Speakers in the transcript player (loaded after player.js, in the same js_on_load; player.js calls this).
 *
 * A diarized transcript names a speaker on each segment ("Speaker 1"…, its `speakers` list in order of first
 * appearance). Each line gets a chip with the speaker's name in a colour of its own; the bar above the lines lists
 * the speakers, and the filter shows one speaker's lines. Clicking a name (in the bar or on a line) edits it: Enter
 * (or leaving the box) renames that speaker on every line at once, Escape keeps the name; then
 * `hooks.rename(names)` asks the server to rename its copy and rewrite the downloads. `names` maps the pipeline's labels to the user's names; the server answers with the names
 * it accepted (or the last good ones and a notice), which `update` shows. Two speakers given one name become one.
 */
function createSpeakerView(root, hooks) {
  "use strict";

  const COLOURS = 8;  // .tp-spk[data-c="0".."7"] in player.css
  const q = (sel) => root.querySelector(sel);
  const bar = q(".tp-speakers"), list = q(".tp-speaker-list"), filter = q(".tp-filter");
  const notice = q(".tp-speaker-notice");

  let labels = [];   // the pipeline's labels, in order of first appearance
  let names = {};    // label -> the user's name for it
  let lines = [];    // per segment: {k: index into labels or -1, chip: its name chip or null}
  let editor = null; // the open name editor: {input, chip, name}

  const nameOf = (k) => (Object.prototype.hasOwnProperty.call(names, labels[k]) ? names[labels[k]] : labels[k]);
  const shownNames = () => [...new Set(labels.map((_, k) => nameOf(k)))];
  const colourOf = (name) => String(labels.findIndex((_, k) => nameOf(k) === name) % COLOURS);

  function chip(name, cls, title) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.title = title;
    b.dataset.name = name;
    b.dataset.c = colourOf(name);
    b.textContent = name;
    return b;
  }

  function plainNames(given) {
    const out = {};
    if (given && typeof given === "object") {
      for (const label of labels) if (typeof given[label] === "string") out[label] = given[label];
    }
    return out;
  }

  // A new result: a chip before the text of each line that has a speaker.
  function load(transcript, segs, value) {
    closeEditor(false);
    labels = Array.isArray(transcript.speakers) ? transcript.speakers.map(String) : [];
    names = plainNames(value.names);
    lines = segs.map((seg, i) => {
      const label = transcript.segments[i].speaker;
      let k = label == null ? -1 : labels.indexOf(String(label));
      if (label != null && k < 0) k = labels.push(String(label)) - 1;  // a label the list left out
      if (k < 0) return { k, chip: null };
      const c = document.createElement("button");
      c.type = "button";
      c.className = "tp-spk";
      c.title = "Rename this speaker";
      seg.textEl.before(c);
      return { k, chip: c };
    });
    filter.value = "";
    paint();
    showNotice(value.notice);
  }

  // The server's answer to a rename: its names win over what the page assumed. A name being edited meanwhile stays
  // open, with what was typed, if that speaker still has the name.
  function update(value) {
    const open = editor && { name: editor.name, text: editor.input.value, inBar: list.contains(editor.input),
                             line: lines.findIndex((l) => l.chip === editor.chip) };
    closeEditor(false);
    names = plainNames(value.names);
    paint();
    showNotice(value.notice);
    hooks.changed();
    if (!open) return;
    const target = open.inBar ? [...list.children].find((c) => c.dataset.name === open.name)
      : open.line >= 0 && lines[open.line].chip;
    if (target && target.dataset.name === open.name) {
      openEditor(target);
      editor.input.value = open.text;
    }
  }

  function showNotice(text) {
    notice.textContent = text ? String(text) : "";
    notice.hidden = !text;
  }

  // Names on the lines, the bar and the filter, from `labels` and `names`; a line's chip changes only if its name does.
  function paint() {
    const has = labels.length > 0;
    bar.hidden = !has;
    filter.hidden = !has;
    root.querySelector(".tp").classList.toggle("tp-has-speakers", has);
    for (const line of lines) {
      if (!line.chip) continue;
      const name = nameOf(line.k), colour = colourOf(name);
      if (line.chip.dataset.name === name && line.chip.dataset.c === colour) continue;
      line.chip.dataset.name = name;
      line.chip.dataset.c = colour;
      line.chip.textContent = name;
    }
    const shown = shownNames();
    list.replaceChildren(...shown.map((n) => chip(n, "tp-spk tp-spk-bar", "Rename " + n)));
    const picked = filter.value;
    const options = shown.map((n) => {
      const o = document.createElement("option");
      o.value = n;
      o.textContent = n;
      return o;
    });
    filter.replaceChildren(filter.options[0], ...options);
    filter.value = shown.includes(picked) ? picked : "";
  }

  // Whether the filter lets segment i be shown.
  function shows(i) {
    const picked = filter.value;
    if (!picked) return true;
    const line = lines[i];
    return Boolean(line) && line.k >= 0 && nameOf(line.k) === picked;
  }

  // "Name: " for copying segment i's text, or "".
  function prefix(i) {
    const line = lines[i];
    return line && line.k >= 0 ? nameOf(line.k) + ": " : "";
  }

  function openEditor(target) {
    closeEditor(false);
    const name = target.dataset.name;
    const input = document.createElement("input");
    input.type = "text";
    input.className = "tp-rename";
    input.value = name;
    input.setAttribute("aria-label", "New name for " + name);
    input.dataset.c = target.dataset.c;
    target.hidden = true;
    target.after(input);
    editor = { input, chip: target, name };
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") { e.preventDefault(); closeEditor(true); }
      if (e.key === "Escape") { e.preventDefault(); closeEditor(false); }
    });
    input.addEventListener("blur", () => closeEditor(true));
    input.addEventListener("click", (e) => e.stopPropagation());
    input.focus();
    input.select();
  }

  function closeEditor(apply) {
    if (!editor) return;
    const { input, chip: target, name } = editor;
    editor = null;
    const wanted = input.value.trim();
    input.remove();
    target.hidden = false;
    if (apply && wanted && wanted !== name) rename(name, wanted);
  }

  // Every speaker now called `from` is called `to`: on the page at once, then on the server.
  function rename(from, to) {
    const following = filter.value === from;
    for (let k = 0; k < labels.length; k++) if (nameOf(k) === from) names[labels[k]] = to;
    paint();
    if (following) filter.value = to;
    showNotice("");
    hooks.changed();
    hooks.rename(Object.assign({}, names));
  }

  root.addEventListener("click", (e) => {
    const target = e.target.closest(".tp-spk");
    if (!target || !root.contains(target)) return;
    e.stopPropagation();
    openEditor(target);
  }, true);
  filter.addEventListener("change", () => hooks.changed());

  return { load, update, shows, prefix };
}

/*
 * The transcript player: timestamped segments beside an <audio> element, kept in sync both ways.
 *
 * Gradio runs this file as the gr.HTML component's `js_on_load` with `element` (the component's root), `props`
 * (props.value is {transcript, audio, title, downloads, result, names, notice}), `watch` (called after props.value
 * changes) and `trigger` (sends an event to the server). The DOM shell comes from player.html; segments are built
 * once per result, and playback only toggles classes on the segment and word that changed: a binary search over
 * start times per frame, so an hour of transcript never re-renders. Speakers (names on the lines, the filter,
 * renaming) are speakers.js; a new value for the result on show (a rename's answer) only updates the names and the
 * downloads, so the audio keeps playing where it was.
 */
function mountTranscriptPlayer(root, props, watch, trigger) {
  "use strict";

  const EPS = 0.02;            // a seek to 3.04 may read back as 3.0399: count it as inside the segment
  const WORD_LINGER = 0.3;     // seconds after a segment's end during which its last word stays lit
  const USER_SCROLL_PAUSE = 4000;  // ms: after the reader scrolls by hand, following waits this long

  const q = (sel) => root.querySelector(sel);
  const box = q(".tp"), audio = q(".tp-audio"), list = q(".tp-segments"), search = q(".tp-search");
  const count = q(".tp-count"), none = q(".tp-none"), follow = q(".tp-follow"), copyButton = q(".tp-copy");
  const rate = q(".tp-rate"), downloads = q(".tp-downloads"), downloadsLabel = q(".tp-downloads-label");
  const canHighlight = typeof CSS !== "undefined" && CSS.highlights && typeof Highlight === "function";

  let segs = [];               // {start, end, text, lower, el, textEl, words: [{start, end, el}], wordStarts}
  let starts = new Float64Array(0);
  let current = -1, currentWord = null, frame = 0, userScrolledAt = -Infinity, searchTimer = 0;
  let shownResult = null;      // the id of the result on show: renames are sent for it
  // Without speakers.js (the player mounted alone) the lines have no speakers.
  const speakers = typeof createSpeakerView === "function"
    ? createSpeakerView(root, { changed: applySearch, rename: sendNames })
    : { load() {}, update() {}, shows: () => true, prefix: () => "" };

  function clock(t, hours) {
    const s = Math.max(0, Math.floor(t + 1e-6));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
    return hours ? hh + ":" + String(mm).padStart(2, "0") + ":" + ss : mm + ":" + ss;
  }

  // Index of the last start <= t, or -1.
  function lastAtOrBefore(sorted, t) {
    let lo = 0, hi = sorted.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  // Put the segment's text in `el`, wrapping each aligned word in a span; text between words stays plain.
  function fillText(el, text, words) {
    const lower = text.toLowerCase(), spans = [];
    let pos = 0;
    for (const w of words || []) {
      const wt = String(w.text || "").trim();
      const at = wt ? lower.indexOf(wt.toLowerCase(), pos) : -1;
      if (at < 0 || at - pos > 40) continue;  // not found nearby: leave it plain rather than mis-place it
      if (at > pos) el.append(text.slice(pos, at));
      const span = document.createElement("span");
      span.className = "tp-w";
      span.textContent = text.slice(at, at + wt.length);
      span.dataset.w = String(spans.length);
      el.append(span);
      spans.push({ start: +w.start, end: +w.end, el: span });
      pos = at + wt.length;
    }
    if (pos < text.length) el.append(text.slice(pos));
    return spans;
  }

  function render(value) {
    stopFrames();
    current = -1;
    currentWord = null;
    const t = value && value.transcript;
    shownResult = (t && value.result) || null;
    if (!t || !Array.isArray(t.segments)) {
      box.dataset.state = "empty";
      audio.removeAttribute("src");
      audio.load();
      list.replaceChildren();
      segs = [];
      starts = new Float64Array(0);
      return;
    }
    const hours = (+t.duration || 0) >= 3600;
    const hasWords = t.segments.some((s) => s.words && s.words.length);
    q(".tp-title").textContent = value.title || "Transcript";
    q(".tp-meta").textContent = [t.language, clock(+t.duration || 0, hours),
      t.segments.length + (t.segments.length === 1 ? " segment" : " segments"),
      hasWords ? "word timing" : ""].filter(Boolean).join(" · ");

    renderDownloads(value.downloads);
    const url = value.audio && value.audio.url;
    if (url) { audio.src = url; } else { audio.removeAttribute("src"); audio.load(); }
    box.classList.toggle("tp-has-audio", Boolean(url));
    box.classList.toggle("tp-hours", hours);

    const frag = document.createDocumentFragment();
    segs = t.segments.map((s, i) => {
      const li = document.createElement("li");
      li.className = "tp-seg";
      li.dataset.i = String(i);
      const time = document.createElement("button");
      time.type = "button";
      time.className = "tp-time";
      time.textContent = clock(+s.start, hours);
      time.title = "Play from " + time.textContent;
      const body = document.createElement("div");
      body.className = "tp-body";
      const text = document.createElement("span");
      text.className = "tp-text";
      const words = fillText(text, String(s.text || ""), s.words);
      body.append(text);
      li.append(time, body);
      frag.append(li);
      return { start: +s.start, end: +s.end, text: String(s.text || ""), lower: String(s.text || "").toLowerCase(),
               el: li, textEl: text, words, wordStarts: Float64Array.from(words, (w) => w.start) };
    });
    starts = Float64Array.from(segs, (s) => s.start);
    speakers.load(t, segs, value);
    list.replaceChildren(frag);
    list.scrollTop = 0;
    box.dataset.state = "ready";
    applySearch();
    sync();
  }

  // The result on show again (a rename's answer): new names and downloads; the lines and the audio stay.
  function refresh(value) {
    renderDownloads(value.downloads);
    speakers.update(value);
  }

  function sendNames(names) {
    if (shownResult && typeof trigger === "function") trigger("submit", { result: shownResult, names });
  }

  // One link per file ("JSON", "SRT", ...), downloading it under its own name.
  function renderDownloads(files) {
    const links = (Array.isArray(files) ? files : []).filter((f) => f && f.url).map((f) => {
      const name = String(f.orig_name || "");
      const a = document.createElement("a");
      a.className = "tp-download";
      a.href = f.url;
      a.download = name;
      a.title = "Download " + name;
      a.textContent = name.includes(".") ? name.split(".").pop().toUpperCase() : "File";
      return a;
    });
    downloads.replaceChildren(downloadsLabel, ...links);
    downloads.hidden = links.length === 0;
  }

  // A new result: bring the player to the top of the screen unless it is there already (on a phone it sits
  // below the whole form).
  function reveal() {
    const top = box.getBoundingClientRect().top;
    if (top >= 0 && top < window.innerHeight / 3) return;
    box.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // Light the segment and word at the audio's current time; touch the DOM only when they change.
  function sync() {
    if (!segs.length) return;
    const t = audio.currentTime;
    const i = lastAtOrBefore(starts, t + EPS);
    if (i !== current) {
      if (current >= 0) segs[current].el.classList.remove("tp-active");
      current = i;
      if (i >= 0) {
        segs[i].el.classList.add("tp-active");
        keepInView(segs[i].el);
      }
    }
    let word = null;
    if (i >= 0 && t <= segs[i].end + WORD_LINGER) {
      const j = lastAtOrBefore(segs[i].wordStarts, t + EPS);
      if (j >= 0) word = segs[i].words[j].el;
    }
    if (word !== currentWord) {
      if (currentWord) currentWord.classList.remove("tp-word-active");
      if (word) word.classList.add("tp-word-active");
      currentWord = word;
    }
  }

  function keepInView(el) {
    const following = follow.getAttribute("aria-pressed") === "true";
    if (!following || el.hidden || performance.now() - userScrolledAt < USER_SCROLL_PAUSE) return;
    const top = el.offsetTop, bottom = top + el.offsetHeight;
    const viewTop = list.scrollTop, viewHeight = list.clientHeight;
    if (top >= viewTop && bottom <= viewTop + viewHeight * 0.8) return;
    const target = Math.max(0, top - viewHeight * 0.25);
    const far = Math.abs(target - viewTop) > 3 * viewHeight;
    list.scrollTo({ top: target, behavior: far ? "auto" : "smooth" });
  }

  function tick() {
    sync();
    frame = requestAnimationFrame(tick);
  }
  function stopFrames() {
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
  }

  function seek(t) {
    userScrolledAt = -Infinity;  // a click is a request to follow from here
    audio.currentTime = Math.max(0, t);
    sync();
    if (audio.getAttribute("src")) audio.play().catch(() => {});
  }

  function applySearch() {
    const query = search.value.trim().toLowerCase();
    const ranges = [];
    let shown = 0;
    segs.forEach((s, i) => {
      const hit = (!query || s.lower.includes(query)) && speakers.shows(i);
      if (s.el.hidden === hit) s.el.hidden = !hit;
      if (!hit) return;
      shown++;
      if (query && canHighlight) collectRanges(s, query, ranges);
    });
    const narrowed = shown < segs.length;
    count.textContent = query || narrowed ? shown + " of " + segs.length + " lines" : "";
    none.hidden = shown > 0 || segs.length === 0;
    if (canHighlight) {
      if (ranges.length) CSS.highlights.set("tp-match", new Highlight(...ranges));
      else CSS.highlights.delete("tp-match");
    }
  }

  // DOM ranges of every match of `query` in a segment; the text is split over plain text and word spans.
  function collectRanges(seg, query, out) {
    const nodes = [], walker = document.createTreeWalker(seg.textEl, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(), at = 0; n; n = walker.nextNode()) {
      nodes.push({ node: n, at });
      at += n.data.length;
    }
    const locate = (offset) => {
      let k = nodes.length - 1;
      while (k > 0 && nodes[k].at > offset) k--;
      return [nodes[k].node, offset - nodes[k].at];
    };
    for (let from = seg.lower.indexOf(query); from >= 0; from = seg.lower.indexOf(query, from + query.length)) {
      const range = new Range();
      range.setStart(...locate(from));
      range.setEnd(...locate(from + query.length));
      out.push(range);
    }
  }

  async function copyAll() {
    const text = segs.map((s, i) => (s.text.trim() ? speakers.prefix(i) + s.text.trim() : "")).filter(Boolean)
      .join("\n");
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (e) {
      ok = copyWithSelection(text);  // plain http on a LAN address has no clipboard API
    }
    copyButton.textContent = ok ? "Copied ✓" : "Copy failed";
    setTimeout(() => { copyButton.textContent = "Copy all"; }, 1500);
  }

  function copyWithSelection(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok;
  }

  list.addEventListener("click", (e) => {
    if (String(window.getSelection() || "") !== "") return;  // the reader is selecting text, not seeking
    const li = e.target.closest(".tp-seg");
    if (!li || e.target.closest(".tp-rename")) return;
    const seg = segs[+li.dataset.i];
    const word = e.target.closest(".tp-w");
    seek(word ? seg.words[+word.dataset.w].start : seg.start);
  });
  for (const type of ["wheel", "touchmove"]) {
    list.addEventListener(type, () => { userScrolledAt = performance.now(); }, { passive: true });
  }
  const SCROLL_KEYS = ["PageUp", "PageDown", "ArrowUp", "ArrowDown", "Home", "End"];
  list.addEventListener("keydown", (e) => {
    if (SCROLL_KEYS.includes(e.key)) userScrolledAt = performance.now();
  });
  audio.addEventListener("play", () => { if (!frame) tick(); });
  for (const type of ["pause", "ended", "emptied"]) audio.addEventListener(type, () => { stopFrames(); sync(); });
  audio.addEventListener("seeked", sync);
  audio.addEventListener("timeupdate", sync);
  audio.addEventListener("error", () => { if (audio.getAttribute("src")) box.classList.remove("tp-has-audio"); });
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applySearch, 120);
  });
  search.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { search.value = ""; applySearch(); }
  });
  follow.addEventListener("click", () => {
    follow.setAttribute("aria-pressed", String(follow.getAttribute("aria-pressed") !== "true"));
    userScrolledAt = -Infinity;
    if (current >= 0) keepInView(segs[current].el);
  });
  rate.addEventListener("change", () => { audio.playbackRate = +rate.value; });
  audio.addEventListener("loadedmetadata", () => { audio.playbackRate = +rate.value; });
  copyButton.addEventListener("click", copyAll);

  watch("value", () => {
    const value = props.value;
    if (value && value.transcript && value.result && value.result === shownResult && segs.length) {
      refresh(value);
      return;
    }
    render(value);
    if (segs.length) reveal();
  });
  render(props.value);
}

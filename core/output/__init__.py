"""Output: chunk texts and word times merged into one timeline of subtitle-ready segments (`merge`, with the text
rules in `text`), rendered as JSON, SRT, VTT or TXT (`writers`)."""

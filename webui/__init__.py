"""The Gradio web app over `core`: `build_demo(pipeline, config)` makes the page, `launch(demo, config)` serves it."""
from .app import build_demo, launch

__all__ = ["build_demo", "launch"]

"""Entry point for every deployment: `python app.py` (also a Hugging Face Space's `app_file`).

APP_MODE=webui (the default) loads the models once (or connects to a RunPod endpoint with ASR_BACKEND=runpod) and
serves the web app on SERVER_NAME:PORT (127.0.0.1:7860 unless GRADIO_SERVER_NAME/PORT say otherwise; APP_AUTH adds a
login). APP_MODE=runpod runs the RunPod worker.
Both stop on SIGTERM (a container's stop) as on Ctrl-C, decode worker processes included.
"""
from __future__ import annotations

import logging
import sys


def main() -> None:
    from core.config import get_config
    from core.errors import CoreError

    try:
        config = get_config()
    except CoreError as e:
        sys.exit(f"configuration error: {e}")
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.app_mode == "runpod":
        try:
            import runpod_worker
        except ImportError as e:
            sys.exit(f"APP_MODE=runpod needs the runpod_worker package and its dependencies ({e}); "
                     "install requirements.txt or set APP_MODE=webui")
        runpod_worker.main()
        return

    from webui.zerogpu import ZeroGpuPipeline, zerogpu_module

    spaces = zerogpu_module(config)  # on a ZeroGPU Space this must be imported before torch touches CUDA
    from core.pipeline import interrupt_on_sigterm, make_pipeline
    from webui import build_demo, launch

    interrupt_on_sigterm()  # a container's stop (SIGTERM) then ends in the `finally` below, as Ctrl-C does
    try:
        pipeline = make_pipeline(config)
    except CoreError as e:
        sys.exit(f"cannot start: {e}")
    try:
        pipeline.warm_up()  # local models: the decode processes start now, not in the first job
        served = pipeline
        if spaces is not None and config.asr_backend != "runpod":
            served = ZeroGpuPipeline(pipeline, spaces)
        logging.getLogger("webui").info("ready: %s", served.describe())
        launch(build_demo(served, config), config)  # returns once the server has stopped
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before Gradio's own wait for them began
        logging.getLogger("webui").info("stopped")
    finally:
        pipeline.close()  # stops the decode worker processes


if __name__ == "__main__":
    main()

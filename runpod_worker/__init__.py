"""The RunPod serverless worker: load the models once, then let the RunPod SDK feed jobs to the handler.

`python -m runpod_worker` and `APP_MODE=runpod python app.py` both call `main()`. The SDK's own command-line flags
work as usual: `--test_input '{"input": {...}}'` runs one job and exits, `--rp_serve_api --rp_api_port N` serves
the SDK's local test API (/run, /runsync, /status) on loopback; with neither, and on RunPod, the worker loop runs.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("runpod_worker")


def main() -> None:
    """Start the worker (does not return until the SDK's loop or local run ends)."""
    import runpod

    from core.config import get_config
    from core.errors import CoreError, InputError
    from core.pipeline import Pipeline, interrupt_on_sigterm

    from .handler import Worker

    t0 = time.perf_counter()
    interrupt_on_sigterm()  # a container's stop (SIGTERM) then ends in the `finally` below
    try:
        config = get_config()
        if not logging.getLogger().handlers:
            logging.basicConfig(level=config.log_level.upper(),
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # The SDK's logger defaults to DEBUG, which prints every job's input (a whole base64 file); its own
        # --rp_log_level flag still wins, since the SDK applies it later.
        from runpod.serverless.modules.rp_logger import RunPodLogger

        RunPodLogger().set_level(config.runpod_log_level.upper())
        if config.asr_backend == "runpod":
            raise InputError("ASR_BACKEND=runpod would make the worker send its jobs to a RunPod endpoint; "
                             "set ASR_BACKEND to auto, vllm or transformers in the worker's environment")
        pipeline = Pipeline(config)
        pipeline.warm_up()  # decode processes start now, not in the first job
        worker = Worker(pipeline)
    except CoreError as e:
        log.error("the worker cannot start: %s", e)
        sys.exit(1)
    log.info("models ready in %.1f s: %s; up to %d job(s) at once", time.perf_counter() - t0,
             worker.pipeline.describe(), worker.concurrency)
    try:  # the SDK's job loop handles SIGTERM itself and returns; its local API (uvicorn) re-raises it when done
        runpod.serverless.start({"handler": worker.handle, "concurrency_modifier": worker.concurrency_modifier})
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        pipeline.close()  # stops the decode worker processes


__all__ = ["main"]

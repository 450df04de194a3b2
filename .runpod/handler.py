"""The entry file RunPod Hub looks for. The worker itself is `runpod_worker` (the image starts it through app.py
with APP_MODE=runpod); this file starts the same worker: `python .runpod/handler.py [--test_input JSON]`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runpod_worker import main  # noqa: E402

if __name__ == "__main__":
    main()

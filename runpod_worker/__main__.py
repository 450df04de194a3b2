"""`python -m runpod_worker [--test_input JSON | --rp_serve_api --rp_api_port N]`: see `runpod_worker.main`."""
from . import main

main()

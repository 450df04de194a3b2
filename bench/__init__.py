"""Benchmarks and the random-weight checkpoints they (and the tests) run on. Nothing here is imported by `core`."""

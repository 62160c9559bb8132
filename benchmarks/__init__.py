"""headrace's benchmarks (`make bench`): the "Speed and memory" figures of issue 2.

Each benchmark module has one `run(ctx) -> Outcome` function; `benchmarks/run.py` runs them,
prints the table and writes docs/benchmarks.md. Nothing here is imported by the test suite:
timings are only ever checked here, never asserted in tests.
"""

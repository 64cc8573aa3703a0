"""Tools around the services, never imported by them: the ``mandat`` CLI, audit and replay,
benchmarks, the demo scenario, the local dev stack and the operations dashboard."""

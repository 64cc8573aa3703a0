"""Benchmarks kept in the repo (`mandat bench ...`): the store, the pipeline, replay."""

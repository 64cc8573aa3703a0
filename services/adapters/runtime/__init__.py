"""A service as a process: settings, the FastStream subscriber, the batch handler, HTTP
status and metrics, and the wiring of a catalog entry into a runtime (``apps``)."""

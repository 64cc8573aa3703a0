"""Errors of the event store."""


class StoreError(Exception):
    """Base class of the store's errors."""


class ConcurrencyError(StoreError):
    """A stream was not at the version the appender expected."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        found = "unknown" if actual is None else str(actual)
        super().__init__(f"stream {stream_id!r}: expected version {expected}, found {found}")


class DuplicateEventError(StoreError):
    """Part of a batch was already stored (by event_id) and part was not: not a clean retry."""

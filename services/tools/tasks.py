"""Background tasks of the tools (readers, copiers, samplers), stopped one way."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and wait until it has stopped: its cancellation is how it
    ends, not an error; any other exception it raises on the way out is."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

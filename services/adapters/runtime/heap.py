"""The garbage collector in a long-running service: what start-up built is set aside.

CPython's full collections walk every container object the process tracks. A service
holds tens of thousands of them from start-up (modules, the contract's pydantic schemas,
its clients), alive as long as the process, and the objects a batch keeps alive for a
moment make a full collection due every few batches: each walks all of start-up's objects
again, a pause for whichever batch is in hand (a profile of the batch path found those
pauses among its larger costs). Frozen once start-up is done (`gc.freeze`), those
objects are out of the collector's sight: a later collection walks only what came after.
Nothing else changes: reference counting frees what it frees, and collections still find
the cycles among newer objects. The only cost: a cycle among frozen objects that becomes
garbage is not reclaimed, and a service builds none after start-up that it drops.
"""

from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect what start-up left over, then freeze every object left; how many there are
    (once per process, when the service is running: never in a test run of many)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

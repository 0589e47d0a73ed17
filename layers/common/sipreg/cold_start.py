"""A function's init: no garbage collection while its code loads, and what the load made frozen.

Every function's `app.py` imports this first and calls `loaded()` last. Loading a function makes
~60-100k objects the collector tracks (botocore, powertools, pydantic's schemas, grpc), nearly
all of them kept for the sandbox's life. Collecting while they are made finds little and costs
a tenth of the import (`bench/bench_cold_start.py`); and every full collection of a warm
invocation would walk them all again, a pause in some request. `loaded()` moves them to the
permanent generation (`gc.freeze`), where no collection looks, and turns collection back on.
The price is the few cycles the load left behind, never freed (~0.3 MB of RSS, measured).

Importing this turns collection off: a function whose load fails is ended by Lambda anyway.
"""

from __future__ import annotations

import gc

_was_enabled = gc.isenabled()
gc.disable()


def loaded() -> None:
    """The function's code is loaded: freeze what it made, collect again from here on."""
    gc.freeze()
    if _was_enabled:
        gc.enable()

"""`make chaos`: faults injected into campaigns on a local stack of its own, each ending with its count of
duplicates, drops, stuck messages and sends accepted after a STOP, pause or cancel was acknowledged."""

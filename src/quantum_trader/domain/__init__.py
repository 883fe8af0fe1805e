"""Pure domain types: no I/O, no asyncio, nothing of ours imported."""

"""Pure domain logic: no I/O and no clock (callers pass the time in)."""

"""The scheduler: the pure round-engine state machine, its socket loop and run outputs."""

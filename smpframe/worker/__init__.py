"""The worker: its socket loop, the executor of WORK messages and the heartbeat thread."""

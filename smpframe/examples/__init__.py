"""Example SMP programs written only against the public API."""

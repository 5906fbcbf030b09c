"""Launchers: start a cluster of workers around a scheduler."""
from smpframe.launch.local import LocalCluster, run_local

__all__ = ["LocalCluster", "run_local"]

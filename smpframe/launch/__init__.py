"""Launchers: start a cluster of workers around a scheduler."""
from smpframe.launch.cluster import Cluster
from smpframe.launch.local import LocalCluster, run_local

__all__ = ["Cluster", "LocalCluster", "run_local"]

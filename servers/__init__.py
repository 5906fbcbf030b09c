"""The smpframe scheduler server (installed as ``smpframe.servers``)."""

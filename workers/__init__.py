"""The smpframe worker process (installed as ``smpframe.workers``)."""

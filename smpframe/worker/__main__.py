"""``python -m smpframe.worker`` is ``smpframe worker``."""
import sys

from smpframe.cli import main

sys.exit(main(["worker", *sys.argv[1:]]))

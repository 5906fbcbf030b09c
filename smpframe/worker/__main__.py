"""``python -m smpframe.worker`` is ``smpframe worker``."""
import sys

from smpframe.cli import exit_now, main

exit_now(main(["worker", *sys.argv[1:]]))

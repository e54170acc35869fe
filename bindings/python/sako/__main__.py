"""``python -m sako ...``: the same as the ``sako`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m engine``: the LungLens engine command line (see :mod:`engine.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

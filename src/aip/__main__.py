"""``python -m aip``: the same as the ``aip`` command."""

import sys

from aip.cli import main

sys.exit(main())

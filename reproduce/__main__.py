"""``python -m reproduce``: see :mod:`reproduce.runner`."""

import sys

from .runner import main

sys.exit(main())

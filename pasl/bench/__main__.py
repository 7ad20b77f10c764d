"""``python -m pasl.bench``: see :mod:`pasl.bench`."""

import sys

from . import main

sys.exit(main())

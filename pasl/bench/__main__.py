"""``python -m pasl.bench``: see :mod:`pasl.bench`."""

import sys

from ..allocator import retain_freed_memory
from . import main

retain_freed_memory()  # as every command line of the package does (pasl.allocator)
sys.exit(main())

"""`python -m runbooks`."""

import sys

from .cli import main

sys.exit(main())

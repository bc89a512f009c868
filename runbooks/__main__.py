# PYTHON_ARGCOMPLETE_OK: `python -m runbooks` answers tab completion (argcomplete's global completion)
"""`python -m runbooks`."""

import sys

from .cli import main

sys.exit(main())

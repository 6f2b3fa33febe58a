"""`python -m controller`: the same as the `dbstate` command."""

import sys

from controller.cli import main

sys.exit(main())

"""`python -m sverm_client`: the `sverm` command (needs the `cli` extra: Click and Rich)."""

import sys

from .cli import main

sys.exit(main())

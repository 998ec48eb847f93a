"""`python -m unlearnkit.cli` (the same as `python -m unlearnkit` and `unlearnkit`)."""

import sys

from unlearnkit.cli import main

sys.exit(main())

"""``python -m unlearnkit`` runs the command-line interface."""

from unlearnkit.cli import main

raise SystemExit(main())

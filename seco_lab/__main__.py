"""``python -m seco_lab`` runs the command line interface."""

from seco_lab.cli import main

raise SystemExit(main())

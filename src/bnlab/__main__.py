"""``python -m bnlab`` is the same as the ``bnlab`` command."""

from bnlab.cli import main

raise SystemExit(main())

"""``python -m sync`` is the same as the ``s3vl`` command."""

from sync.cli import main

raise SystemExit(main())

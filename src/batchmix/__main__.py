"""``python -m batchmix``: the application's command line (see ``batchmix --help``)."""

from batchmix.app.cli import main

raise SystemExit(main())

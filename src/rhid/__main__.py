"""Allow ``python -m rhid``."""

from rhid.cli import main

raise SystemExit(main())

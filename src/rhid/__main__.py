"""Allow ``python -m rhid``."""

from rhid.entry import main

raise SystemExit(main())

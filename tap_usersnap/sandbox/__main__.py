"""`python -m tap_usersnap.sandbox` runs the sandbox CLI (same as `usersnap-sandbox`)."""

from tap_usersnap.sandbox.server import main

raise SystemExit(main())

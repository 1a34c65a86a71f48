"""`python -m jailer`."""

import sys

from jailer.cli import main

sys.exit(main())

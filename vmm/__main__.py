"""`python -m vmm`: the same as the `vmm` command (handy with `python -I -S` in a jail)."""

import sys

from vmm.cli import main

sys.exit(main())

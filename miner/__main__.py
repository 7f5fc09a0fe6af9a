"""`python -m miner`: the same as the `miner` command."""

import sys

from miner.cli import main

sys.exit(main())

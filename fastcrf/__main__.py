"""``python -m fastcrf``: the same command line as the ``fastcrf`` script."""

import sys

from .cli import main

sys.exit(main())

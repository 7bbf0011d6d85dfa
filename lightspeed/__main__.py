"""
``python -m lightspeed ...``: the same as the ``lightspeed`` command.
"""

import sys

from lightspeed.cli import main

sys.exit(main())

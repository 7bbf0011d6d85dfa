"""
C{python -m lightspeed ...}: the same as the C{lightspeed} command.
"""

import sys

from lightspeed.cli import main

sys.exit(main())

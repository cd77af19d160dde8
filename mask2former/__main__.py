"""``python -m mask2former ...`` (what torchrun launches): the same as the ``mask2former`` command."""

import sys

from mask2former.cli import main

sys.exit(main())

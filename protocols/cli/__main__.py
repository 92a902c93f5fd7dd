"""``python -m protocols.cli``: the ``rrambench`` command."""

import sys

from protocols.cli.main import main

sys.exit(main())

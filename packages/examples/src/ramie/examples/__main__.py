"""``python -m ramie.examples``: the same as the ``ramie-examples`` console script."""

import sys

from ramie.examples._cli import main

if __name__ == "__main__":
    sys.exit(main())

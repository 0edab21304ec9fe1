"""Allow ``python -m napari_digits``."""

import sys

from napari_digits.cli import main

sys.exit(main())

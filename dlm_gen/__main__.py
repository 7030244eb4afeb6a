"""`python -m dlm_gen` is the same as `dlm-gen`."""

import sys

from dlm_gen.cli import main

sys.exit(main())

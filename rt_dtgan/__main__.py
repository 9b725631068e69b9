"""`python -m rt_dtgan` is the `rt-dtgan` command."""

import sys

from rt_dtgan.cli import main

sys.exit(main())

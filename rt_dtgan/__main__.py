"""`python -m rt_dtgan` is the `rt-dtgan` command."""

from rt_dtgan.cli import run

run()

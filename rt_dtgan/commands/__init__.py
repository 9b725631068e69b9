"""The subcommands of `rt-dtgan`, one module per group; each has ``add_parsers(commands)``."""

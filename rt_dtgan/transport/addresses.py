"""The transport's default addresses, both on loopback (imports nothing, so the CLI's parsers
can show them)."""

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"  # where clients find the engine: a worker's bind, or a broker's front
DEFAULT_BROKER_BACK = "tcp://127.0.0.1:5556"  # where workers join a broker

"""lockhub gateway: the hub daemon that enforces delivery windows offline."""

__version__ = "0.1.0"

"""lockhub cloud side: ingest, window commands, carriers; ``protocol`` is shared with hubs."""

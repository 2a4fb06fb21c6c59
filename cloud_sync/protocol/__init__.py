"""The wire contract shared by hubs and the cloud: pure, typed, no I/O."""

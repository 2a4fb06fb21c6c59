"""Drivers for locks behind a bridge or a vendor cloud, and the fakes that stand in for them."""

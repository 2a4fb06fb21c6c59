"""Bluetooth LE: the shared transport, the fake backend for tests, and BLE lock drivers."""

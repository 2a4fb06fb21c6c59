"""Nuki Smart Lock over BLE: our own implementation of Nuki's published Smart Lock API."""

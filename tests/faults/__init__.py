"""Fault loops over real processes: hub and cloud as subprocesses, a real mosquitto."""

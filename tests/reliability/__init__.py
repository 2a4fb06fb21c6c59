"""Reliability campaign: crash rounds, power cuts and a full disk, with figures."""

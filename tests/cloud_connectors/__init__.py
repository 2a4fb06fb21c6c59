"""Carrier connectors (Uber Direct native, karrio adapter) against fake carrier servers."""

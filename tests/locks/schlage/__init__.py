"""Tests of the Schlage cloud driver against a fake Schlage cloud on 127.0.0.1."""

"""Tests of the Nuki Bridge driver against a fake bridge on 127.0.0.1."""

"""Test ports come from below the ephemeral range, a block per xdist worker, never twice."""

from __future__ import annotations

import socket

import pytest

from tests.infra import services
from tests.infra.services import PORT_BLOCK_SIZE, PORT_BLOCKS_START, free_port


def test_ports_are_below_the_ephemeral_range_and_not_repeated() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(PORT_BLOCKS_START <= port < services._ephemeral_low() for port in ports)


def test_each_xdist_worker_draws_from_its_own_block(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = set()
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        blocks.add((free_port() - PORT_BLOCKS_START) // PORT_BLOCK_SIZE)
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    blocks.add((free_port() - PORT_BLOCKS_START) // PORT_BLOCK_SIZE)
    assert blocks == {0, 1, 2, 3}


def test_a_port_in_use_is_passed_over() -> None:
    taken = free_port() + 1  # the next one in turn
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        assert free_port() != taken


def test_a_kernel_handing_out_low_ports_gets_an_os_picked_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services, "_ephemeral_low", lambda: 1024)
    port = free_port()
    assert port >= 1024
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free

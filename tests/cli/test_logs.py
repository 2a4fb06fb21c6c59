"""Logs: JSON off a terminal or under systemd, console on one, UTC timestamps, secrets redacted."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from gateway.logs import configure_logging


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_off_a_terminal_with_utc_timestamp() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", stream=out, env={})
    structlog.get_logger().info("window.applied", window_id="w1", version=3)
    [line] = lines(out)
    event = json.loads(line)
    assert (event["event"], event["window_id"], event["level"]) == ("window.applied", "w1", "info")
    assert datetime.fromisoformat(event["timestamp"]).utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize("variable", ["JOURNAL_STREAM", "INVOCATION_ID"])
def test_json_under_systemd_even_on_a_terminal(variable: str) -> None:
    out = Terminal()
    configure_logging("info", "auto", stream=out, env={variable: "x"})
    structlog.get_logger().info("hub.started")
    assert json.loads(lines(out)[0])["event"] == "hub.started"


def test_console_on_a_terminal() -> None:
    out = Terminal()
    configure_logging("info", "auto", stream=out, env={})
    structlog.get_logger().info("hub.started", hub_id="h1")
    text = out.getvalue()
    assert "hub.started" in text
    assert not text.startswith("{")


def test_explicit_formats_win() -> None:
    console, as_json = Terminal(), Terminal()
    configure_logging("info", "console", stream=io.StringIO(), env={"INVOCATION_ID": "1"})
    configure_logging("info", "console", stream=console, env={"INVOCATION_ID": "1"})
    structlog.get_logger().info("a")
    configure_logging("info", "json", stream=as_json, env={})
    structlog.get_logger().info("b")
    assert not console.getvalue().startswith("{")
    assert json.loads(as_json.getvalue())["event"] == "b"


def test_secrets_are_redacted() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out, env={})
    secrets = {"code": "123456", "api_token": "t0k", "Password": "pw", "key": "k"}
    structlog.get_logger().info("access.denied", lock_id="front", **secrets)
    event = json.loads(lines(out)[0])
    assert event["code"] == event["api_token"] == event["Password"] == event["key"] == "[redacted]"
    assert event["lock_id"] == "front"
    assert "123456" not in out.getvalue()


def test_level_filters_and_exceptions_are_rendered() -> None:
    out = io.StringIO()
    configure_logging("WARNING", "json", stream=out, env={})
    log = structlog.get_logger()
    log.info("hidden")
    try:
        _ = 1 // 0
    except ZeroDivisionError:
        log.exception("failed")
    [line] = lines(out)
    assert "ZeroDivisionError" in json.loads(line)["exception"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("loud", "json", stream=io.StringIO(), env={})


def test_defaults_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", env={})
    structlog.get_logger().info("to.stderr")
    assert json.loads(capsys.readouterr().err)["event"] == "to.stderr"

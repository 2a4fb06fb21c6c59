"""read_admin_token: the admin bearer token comes from a private file, or there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.daemon import read_admin_token
from gateway.errors import GatewayError

TOKEN = "0123456789abcdef-admin"  # noqa: S105 - a test value


def token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_no_file_configured_means_no_admin_api() -> None:
    assert read_admin_token(None) is None


def test_a_private_file_gives_its_token_without_the_newline(tmp_path: Path) -> None:
    assert read_admin_token(token_file(tmp_path, TOKEN + "\n")) == TOKEN


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(GatewayError, match=f"cannot read admin_token_file {path}"):
        read_admin_token(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused_with_chmod_advice(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path, TOKEN, mode)
    with pytest.raises(GatewayError, match=f"run `chmod 600 {path}`"):
        read_admin_token(path)


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="shorter than 16 characters"):
        read_admin_token(token_file(tmp_path, "0123456789abcde\n"))


def test_a_token_file_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real-token"
    real.write_text("a-long-enough-admin-token-0123\n")
    real.chmod(0o600)
    link = tmp_path / "admin-token"
    link.symlink_to(real)
    with pytest.raises(GatewayError, match="cannot read admin_token_file"):
        read_admin_token(link)
    assert read_admin_token(real) == "a-long-enough-admin-token-0123"

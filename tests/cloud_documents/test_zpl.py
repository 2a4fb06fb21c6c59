"""ZPL labels are well formed, carry the tracking number and URL, and escape user text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from cloud_sync.carriers.documents import DocumentError, LabelData, Party, render_label
from cloud_sync.carriers.documents.symbols import LABEL_HEIGHT_DOTS, LABEL_WIDTH_DOTS
from cloud_sync.carriers.documents.zpl import field_data, render_label_zpl
from tests.cloud_documents.conftest import JOB_URL, RECIPIENT, TRACKING, label
from tests.cloud_documents.strategies import labels
from tests.cloud_documents.zpl_syntax import ZplSyntaxError, check, unescape


def _data_after(commands: list[tuple[str, str]], name: str) -> str:
    """The decoded field data of the first field after command ``name``."""
    names = [command for command, _ in commands]
    start = names.index(name)
    return unescape(commands[names.index("FD", start)][1])


def _fields(zpl: bytes) -> list[str]:
    """Decoded field data in order."""
    return [unescape(data) for name, data in check(zpl) if name == "FD"]


def test_label_is_well_formed_with_barcode_and_qr() -> None:
    body, content_type = render_label(label(), "zpl")
    assert content_type == "application/zpl"
    commands = check(body)
    names = [name for name, _ in commands]
    assert names[:5] == ["XA", "CI", "PW", "LL", "LH"]
    assert ("CI", "28") in commands
    assert ("PW", str(LABEL_WIDTH_DOTS)) in commands
    assert ("LL", str(LABEL_HEIGHT_DOTS)) in commands
    assert _data_after(commands, "BC") == TRACKING
    assert _data_after(commands, "BQ") == f"MA,{JOB_URL}"
    assert "Zoë Ødegård" in _fields(body)


def test_user_text_cannot_inject_commands() -> None:
    hostile = Party("^XZ~JA evil \\ name", "Street ^FS 1", "Oslo", "0155", "NO")
    body = render_label_zpl(label(recipient=hostile, job_url="https://x.example/a~b^c"))
    fields = _fields(body)
    assert "^XZ~JA evil \\ name" in fields
    assert "MA,https://x.example/a~b^c" in fields
    assert "^FH\\^FD\\5EXZ\\7EJA evil \\5C name^FS" in body.decode()


def test_field_data_escapes_only_when_needed() -> None:
    assert field_data("plain_text") == "^FDplain_text^FS"
    assert field_data("a^b") == "^FH\\^FDa\\5Eb^FS"


def test_long_tracking_numbers_use_two_dot_bars() -> None:
    commands = check(render_label_zpl(label(tracking_number="AB" * 14)))
    assert ("BY", "2") in commands
    assert ("BY", "3") in check(render_label_zpl(label()))


def test_coordinates_stay_on_the_label() -> None:
    long_party = Party("N" * 200, "Street " * 140, "City " * 39, "X" * 40, "NO", "9" * 40)
    for name, params in check(render_label_zpl(label(recipient=long_party, sender=long_party))):
        if name in {"FO", "FT"}:
            x, y = (int(part) for part in params.split(","))
            assert 0 <= x < LABEL_WIDTH_DOTS
            assert 0 <= y < LABEL_HEIGHT_DOTS


def test_unicode_font_is_assigned_and_used() -> None:
    chinese = Party("张伟", "建国路88号", "北京市", "100022", "CN")
    commands = check(render_label_zpl(label(recipient=chinese), unicode_font="E:ANMDJ.TTF"))
    assert ("CW", "1,E:ANMDJ.TTF") in commands
    assert "张伟" in [data for name, data in commands if name == "FD"]
    assert all(name != "A0" for name, _ in commands)


@pytest.mark.parametrize("font", ["ANMDJ.TTF", "E:../x.TTF", "E:A^XZ.TTF"])
def test_bad_unicode_font_is_refused(font: str) -> None:
    with pytest.raises(DocumentError) as caught:
        render_label_zpl(label(), unicode_font=font)
    assert caught.value.field == "unicode_font"


@pytest.mark.parametrize(
    "zpl",
    [b"^XA^FO1,1^FDx^FS", b"^FO1,1^FDx^FS^XZ", b"^XA^ZZ^XZ", b"^XA^FO1,1^FDx^XZ",
     b"^XA^FDx^FS^XZ", b"^XA^FO1,1^FO2,2^FDx^FS^XZ", b"^XA^FO1,1^FDa~b^FS^XZ",
     b"^XA^FO1,1^XZ", b"^XA^XA^XZ"],
)  # fmt: skip
def test_the_checker_catches_malformed_zpl(zpl: bytes) -> None:
    with pytest.raises(ZplSyntaxError):
        check(zpl)


@settings(max_examples=60, deadline=None)
@given(labels())
def test_any_valid_label_gives_well_formed_zpl(data: LabelData) -> None:
    commands = check(render_label_zpl(data))
    assert _data_after(commands, "BC") == data.tracking_number
    assert _data_after(commands, "BQ") == f"MA,{data.job_url}"


def test_recipient_fixture_is_latin() -> None:
    assert RECIPIENT.name == "Zoë Ødegård"

"""Every worked example of Nuki's Smart Lock API document, reproduced byte for byte."""

from __future__ import annotations

import pytest
from nacl.bindings import crypto_scalarmult

from gateway.locks.ble.nuki import codec, messages
from gateway.locks.ble.nuki.codec import Command

h = bytes.fromhex
CLIENT_PRIVATE = h("8CAA54672307BFFDF5EA183FC607158D2011D008ECA6A1088614FF0853A5AA07")
CLIENT_PUBLIC = h("F88127CCF48023B5CBE9101D24BAA8A368DA94E8C2E3CDE2DED29CE96AB50C15")
LOCK_PUBLIC = h("2FE57DA347CD62431528DAAC5FBB290730FFF684AFC4CFC2ED90995F58CB3B74")
SHARED = h("217FCB0F18CAF284E9BDEA0B94B83B8D10867ED706BFDEDBD2381F4CB3B8F730")
NONCE_1 = h("6CD4163D159050C798553EAA57E278A579AFFCBC56F09FC57FE879E51C42DF17")
NONCE_2 = h("E0742CFEA39CB46109385BF91286A3C02F40EE86B0B62FC34033094DE41E2C0D")
CLIENT_NONCE = h("52AFE0A664B4E9B56DC6BD4CB718A6C9FED6BE17A7411072AA0D315378140577")
AUTH_ID_FRAME = h(
    "07003A270A2E453443C3790E657CEBE634B03F0102F45681B4067C661D46E6E15EDF0200000083B33643"
    "C6D97EF77ED51C02A277CBF7EA479915982F13C61D997A56678AD77791BFA7E95229A3DD34F87132BF3E"
    "3C97DB9F"
)
AUTH_DATA_FRAME = h(
    "0600CF1B9E7801E3196E6594E76D57908EE500AAD5C33F4B6E0BBEA0DDEF82967BFC00000000004D6172"
    "632028546573742900000000000000000000000000000000000000000052AFE0A664B4E9B56DC6BD4CB7"
    "18A6C9FED6BE17A7411072AA0D31537814057769F2"
)


def test_keys_and_shared_key() -> None:
    assert codec.public_key(CLIENT_PRIVATE) == CLIENT_PUBLIC
    assert crypto_scalarmult(CLIENT_PRIVATE, LOCK_PUBLIC) == h(
        "0DE40B998E0E330376F2D2FC4892A6931E25055FD09F054F99E93FECD9BA611E"
    )
    assert codec.shared_key(LOCK_PUBLIC, CLIENT_PRIVATE) == SHARED


@pytest.mark.parametrize(
    ("command", "payload", "frame"),
    [
        (Command.REQUEST_DATA, messages.request_data(Command.PUBLIC_KEY), "0100030027A7"),
        (Command.PUBLIC_KEY, CLIENT_PUBLIC, "0300" + CLIENT_PUBLIC.hex() + "9241"),
        (Command.PUBLIC_KEY, LOCK_PUBLIC, "0300" + LOCK_PUBLIC.hex() + "9DB9"),
        (Command.CHALLENGE, NONCE_1, "0400" + NONCE_1.hex() + "C3DF"),
        (Command.CHALLENGE, NONCE_2, "0400" + NONCE_2.hex() + "7FE1"),
        (Command.STATUS, messages.status(messages.StatusCode.COMPLETE), "0E00009DD7"),
    ],
)
def test_plain_frames(command: int, payload: bytes, frame: str) -> None:
    assert codec.encode_plain(command, payload) == h(frame)
    assert codec.decode_plain(h(frame)) == (command, payload)


def test_crc_is_ccitt_false() -> None:
    assert codec.crc16(b"123456789") == 0x29B1


def test_authorization_authenticator() -> None:
    tag = codec.authenticator(SHARED, CLIENT_PUBLIC, LOCK_PUBLIC, NONCE_1)
    frame = codec.encode_plain(Command.AUTHORIZATION_AUTHENTICATOR, tag)
    assert frame == h("0500B09A0D3979A029E5FD027B519EAA200BC14AD3E163D3BE4563843E021073BCB1C357")


def test_authorization_data() -> None:
    data = messages.AuthorizationData(0, 0, "Marc (Test)", CLIENT_NONCE)
    tag = codec.authenticator(SHARED, data.signed_part(), NONCE_2)
    frame = codec.encode_plain(Command.AUTHORIZATION_DATA, tag + data.signed_part())
    assert frame == AUTH_DATA_FRAME
    received_tag, decoded = messages.decode_authorization_data(codec.decode_plain(frame)[1])
    assert (received_tag, decoded) == (tag, data)


def test_authorization_id_and_confirmation() -> None:
    command, payload = codec.decode_plain(AUTH_ID_FRAME)
    assert command == Command.AUTHORIZATION_ID
    tag, auth = messages.decode_authorization_id(payload)
    assert auth.auth_id == 2
    assert codec.authenticators_match(
        codec.authenticator(SHARED, auth.signed_part(), CLIENT_NONCE), tag
    )
    confirm_tag = codec.authenticator(SHARED, (2).to_bytes(4, "little"), auth.lock_nonce)
    frame = codec.encode_plain(
        Command.AUTHORIZATION_ID_CONFIRMATION, confirm_tag + (2).to_bytes(4, "little")
    )
    assert frame == h(
        "1E003A41B91A66FBC4D22EFEFBB7272140829695A3917433D5BEB981B76166D13F8A02000000CDF5"
    )


def test_encrypted_lock_state_request() -> None:
    nonce = h("37917F1AF31EC5940705F34D1E5550607D5B2F9FE7D496B6")
    wire = codec.encode_encrypted(
        SHARED, nonce, 2, Command.REQUEST_DATA, messages.request_data(Command.KEYTURNER_STATES)
    )
    assert wire == h(
        "37917F1AF31EC5940705F34D1E5550607D5B2F9FE7D496B6020000001A00670D124926004366532E8D92"
        "7A33FE84E782A9594D39157D065E"
    )
    plain = h("0200000001000C00418D")
    assert plain[-2:] == codec.crc16(plain[:-2]).to_bytes(2, "little")
    message = codec.decode_encrypted(SHARED, wire)
    assert (message.auth_id, message.command, message.payload) == (2, 1, h("0C00"))

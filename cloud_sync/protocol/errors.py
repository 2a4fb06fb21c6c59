"""The protocol's one base exception and its subclasses, grouped by what the caller does."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by ``cloud_sync.protocol``: the message is rejected."""


class MalformedError(ProtocolError):
    """The bytes are not a well-formed message (bad JSON, base64, fields, types)."""


class SignatureError(ProtocolError):
    """The signature does not verify, or the header is not one we accept."""


class UnknownKeyError(SignatureError):
    """The ``kid`` names no key we trust."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"unknown signing key id {kid!r}")
        self.kid = kid


class PolicyError(ProtocolError):
    """A verified message that must still be refused (wrong hub, expired, replayed)."""

    reason = "rejected"


class WrongHubError(PolicyError):
    """The message names another hub."""

    reason = "wrong_hub"


class ExpiredError(PolicyError):
    """The command's ``expires_at`` has passed."""

    reason = "expired"


class NotYetValidError(PolicyError):
    """A courier token's ``nbf`` is still ahead."""

    reason = "not_yet_valid"


class ReplayError(PolicyError):
    """The sequence number was seen already or is older than the replay window."""

    reason = "replayed"


class SealError(ProtocolError):
    """A sealed code cannot be opened (wrong key, wrong window, tampered)."""


class ChainError(ProtocolError):
    """Records do not form a gap-free hash chain; ``seq`` is the first bad record."""

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(f"record seq {seq}: {problem}")
        self.seq = seq
        self.problem = problem

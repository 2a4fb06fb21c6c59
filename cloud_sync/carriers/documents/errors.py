"""The documents package's one exception: the data cannot become a label or a manifest."""

from __future__ import annotations

from cloud_sync.carriers.errors import CarrierError
from cloud_sync.errors import InvalidRequestError


class DocumentError(InvalidRequestError, CarrierError):
    """Input that no label or manifest can show: reject it (HTTP 400); ``field`` names it.

    A CarrierError like every error of the carriers package, and an InvalidRequestError so the
    API's error mapping answers 400 without knowing about documents. Defined here because
    ``cloud_sync.carriers.errors`` (owned by the core helper) has no document error.
    """

    @property
    def kind(self) -> str:
        """A short machine word for audit rows and API answers."""
        return "document"

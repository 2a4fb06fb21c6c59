"""What pairing stores for a cloud lock (encrypted, in the CredentialStore) and its cursor."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ...credentials import CredentialStore
from .activities import Cursor, CursorError
from .cloud import YaleCloudAuthError

KIND = "yale_cloud"
CURSOR_KIND = "yale_cloud_cursor"


@dataclass(frozen=True, slots=True)
class CloudCredentials:
    """The access token and what the driver needs to know about the account and the lock."""

    brand: str
    install_id: str
    access_token: str
    expires_at: datetime
    user_id: str
    august_lock_id: str
    house_id: str

    def __repr__(self) -> str:
        return f"CloudCredentials(brand={self.brand!r}, august_lock_id={self.august_lock_id!r})"

    def to_json(self) -> dict[str, Any]:
        """JSON for the store."""
        data = asdict(self)
        data["expires_at"] = self.expires_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CloudCredentials:
        """Parse what ``to_json`` wrote; YaleCloudAuthError (pair again) otherwise."""
        damaged = YaleCloudAuthError(
            "the stored Yale cloud credentials are damaged; pair the lock again"
        )
        names = [name for name in cls.__dataclass_fields__ if name != "expires_at"]
        values = {name: data.get(name) for name in names}
        expires = data.get("expires_at")
        if not all(isinstance(value, str) for value in values.values()):
            raise damaged
        if not isinstance(expires, str):
            raise damaged
        try:
            expires_at = datetime.fromisoformat(expires)
        except ValueError:
            raise damaged from None
        if expires_at.tzinfo is None:
            raise damaged
        return cls(expires_at=expires_at, **{k: str(v) for k, v in values.items()})


def load(store: CredentialStore, lock_id: str) -> CloudCredentials:
    """The lock's credentials; YaleCloudAuthError naming the pair command when there are none."""
    data = store.load(lock_id, KIND)
    if data is None:
        raise YaleCloudAuthError(
            f"lock {lock_id} is not paired with the Yale / August cloud; run "
            f"`lockhub gateway pair yale_cloud --lock {lock_id}`"
        )
    return CloudCredentials.from_json(data)


def save(store: CredentialStore, lock_id: str, credentials: CloudCredentials) -> None:
    """Replace the lock's credentials."""
    store.save(lock_id, KIND, credentials.to_json())


def load_cursor(store: CredentialStore, lock_id: str) -> Cursor | None:
    """The persisted cursor, or None (first start, or a damaged one: start from now)."""
    data = store.load(lock_id, CURSOR_KIND)
    if data is None:
        return None
    try:
        return Cursor.from_json(data)
    except CursorError:
        return None


def save_cursor(store: CredentialStore, lock_id: str, cursor: Cursor) -> None:
    """Persist the cursor."""
    store.save(lock_id, CURSOR_KIND, cursor.to_json())

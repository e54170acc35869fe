"""API keys: client keys may recommend and post events, admin keys may also change the
catalog and retrain. Keys are kept only as SHA-256 digests and compared in constant
time."""
from __future__ import annotations

import hashlib
import hmac
import os
from typing import Iterable, List, Optional, Tuple

CLIENT = "client"
ADMIN = "admin"
ROLES = (CLIENT, ADMIN)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """The configured keys, hashed.

    Parameters
    ----------
    client, admin : iterable of str
        Plain keys. A key written ``sha256:<64 hex digits>`` is taken as an already
        hashed key (so files need not hold plain keys).
    """

    def __init__(self, client: Iterable[str] = (), admin: Iterable[str] = ()) -> None:
        self._entries: List[Tuple[bytes, str]] = []
        for role, keys in ((CLIENT, client), (ADMIN, admin)):
            for k in keys:
                k = k.strip()
                if k:
                    self._entries.append((self._parse(k), role))

    @staticmethod
    def _parse(k: str) -> bytes:
        if k.startswith("sha256:") and len(k) == 71:
            try:
                return bytes.fromhex(k[7:])
            except ValueError:
                pass
        return _digest(k)

    def __len__(self) -> int:
        return len(self._entries)

    def role(self, key: Optional[str]) -> Optional[str]:
        """The role of a presented key, or None. Every entry is compared (constant time
        per entry, no early exit), admin wins if a key is in both lists."""
        if not key:
            return None
        d = _digest(key)
        found: Optional[str] = None
        for digest, role in self._entries:
            if hmac.compare_digest(d, digest):
                if found != ADMIN:
                    found = role
        return found

    @classmethod
    def from_sources(cls, keys_file: Optional[str] = None, env: Optional[dict] = None) -> "KeyRing":
        """Keys from ``SAKO_CLIENT_KEYS`` / ``SAKO_ADMIN_KEYS`` (comma-separated) and an
        optional file of lines ``client:KEY`` or ``admin:KEY`` (``#`` comments)."""
        env = os.environ if env is None else env
        client = [k for k in env.get("SAKO_CLIENT_KEYS", "").split(",") if k.strip()]
        admin = [k for k in env.get("SAKO_ADMIN_KEYS", "").split(",") if k.strip()]
        if keys_file:
            file_client, file_admin = read_keys_file(keys_file)
            client += file_client
            admin += file_admin
        return cls(client, admin)


def read_keys_file(path: str) -> Tuple[List[str], List[str]]:
    """The (client, admin) keys of a file of lines ``client:KEY`` / ``admin:KEY``
    (blank lines and ``#`` comments ignored).

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        A line is not ``client:KEY`` or ``admin:KEY``.
    """
    client: List[str] = []
    admin: List[str] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            role, sep, key = line.partition(":")
            role = role.strip().lower()
            if not sep or role not in ROLES or not key.strip():
                raise ValueError(f"{path}:{n}: expected 'client:KEY' or 'admin:KEY'")
            (admin if role == ADMIN else client).append(key.strip())
    return client, admin

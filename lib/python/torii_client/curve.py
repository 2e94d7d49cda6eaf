"""CURVE keys for ZeroMQ, as the daemon and ``torii keygen`` write them.

A key file holds one Z85 key (40 characters), optionally surrounded by
whitespace and ``#`` comment lines (docs/security.md). ``torii keygen --out
PREFIX`` writes ``PREFIX.key`` (the secret key, mode 0600) and ``PREFIX.pub``.
A client needs the daemon's public key and its own key pair, whose public
half must be in the daemon's ``security.curve_authorized_keys_dir``.
Errors never contain key text (a secret key must not reach a log line).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import zmq
from zmq.utils import z85

Z85_KEY_LENGTH = 40


def is_z85_key(key: str) -> bool:
    """True when ``key`` is 40 characters that decode as Z85 (32 bytes)."""
    if not isinstance(key, str) or len(key) != Z85_KEY_LENGTH:
        return False
    try:
        return len(z85.decode(key.encode("ascii"))) == 32
    except Exception:  # noqa: BLE001 - any decoding failure means "not a key"
        return False


def read_key_file(path: str) -> str:
    """The one Z85 key held by the key file at ``path``.

    Raises ``ValueError`` naming the file (never its content) when it does not
    hold exactly one valid key, ``OSError`` when it cannot be read."""
    with open(path, "r", encoding="ascii", errors="replace") as f:
        text = f.read()
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keys.append(line)
    if len(keys) != 1:
        raise ValueError(f"{path}: expected one CURVE key, found {len(keys)} non-comment lines")
    if not is_z85_key(keys[0]):
        raise ValueError(f"{path}: not a Z85 CURVE key (40 characters)")
    return keys[0]


def public_from_secret(secret_key: str) -> str:
    """The public key (Z85) of a Z85 secret key."""
    if not is_z85_key(secret_key):
        raise ValueError("not a Z85 CURVE secret key")
    return zmq.curve_public(secret_key.encode("ascii")).decode("ascii")


@dataclass(frozen=True)
class CurveKeys:
    """The three keys a CURVE client needs, all Z85 (40 characters)."""

    server_public_key: str
    client_public_key: str
    client_secret_key: str

    def __repr__(self) -> str:  # never print the secret key
        return f"CurveKeys(server_public_key={self.server_public_key!r}, client_public_key={self.client_public_key!r})"

    @classmethod
    def from_files(cls, server_public_key_file: str, client_secret_key_file: str,
                   client_public_key_file: Optional[str] = None) -> "CurveKeys":
        """Reads the daemon's public key (e.g. ``server.pub``) and this client's
        secret key (e.g. ``app.key``); the client's public key is read from
        ``client_public_key_file`` when given, else derived from the secret."""
        server = read_key_file(server_public_key_file)
        secret = read_key_file(client_secret_key_file)
        public = read_key_file(client_public_key_file) if client_public_key_file else public_from_secret(secret)
        return cls(server, public, secret)

    def validate(self) -> None:
        """Raises ValueError unless all three keys are Z85 keys and libzmq has CURVE."""
        if not (is_z85_key(self.server_public_key) and is_z85_key(self.client_public_key)
                and is_z85_key(self.client_secret_key)):
            raise ValueError("CURVE needs the server public key and the client key pair, 40 Z85 characters each")
        if not zmq.has("curve"):
            raise ValueError("this libzmq was built without CURVE")

    def apply(self, socket: zmq.Socket) -> None:
        """Sets the socket's CURVE client options (before connect)."""
        socket.curve_serverkey = self.server_public_key.encode("ascii")
        socket.curve_publickey = self.client_public_key.encode("ascii")
        socket.curve_secretkey = self.client_secret_key.encode("ascii")

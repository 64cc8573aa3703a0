"""The anchors' Ed25519 keys: made by `mandat audit keygen`, kept in files the database never
sees. The private key signs (the anchorer, in the service's process); the public key is all
an auditor needs.

A private key file readable by anyone but its owner is refused, as ssh refuses one: a key
that others can read proves nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(Exception):
    """A key file that cannot be used (missing, unreadable, too open, not an Ed25519 key)."""


def key_id(public: Ed25519PublicKey) -> str:
    """A short name of a public key (the first 16 hex digits of SHA-256 of its raw bytes),
    written in every anchor so an auditor knows which key to check it with."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key_pair(out: Path) -> tuple[Path, Path]:
    """A new key pair: the private key at `out` (PEM, PKCS#8, mode 0600, created, never
    overwritten) and its public key at `out` + ".pub" (PEM). Returns both paths."""
    public_path = out.with_name(out.name + ".pub")
    for path in (out, public_path):
        if path.exists():
            raise KeyFileError(f"{path} exists: a key is never overwritten")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot create {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    os.chmod(out, 0o600)  # whatever the umask did
    public_path.write_bytes(public_pem(key.public_key()))
    return out, public_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in `path` (PEM), refused if the file is open to others."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the anchor key {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"the anchor key {path} is open to others (mode {stat.S_IMODE(mode):o}): chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 public key in `path` (PEM)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the public key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 public key")
    return key


def verify(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is `public`'s signature of `message`."""
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True

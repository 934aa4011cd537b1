"""Key files in the node home, written once with mode 0600 and never overwritten.

The agent key is an OpenSSH private key so that the mesh's SSH server can use it as its
host key as it is; the age identity receives content sealed for this node's role.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bzzz.domain.identity import Ed25519Signer
from bzzz.errors import ConfigError, one_line

AGENT_KEY_FILE = "agent.key"
AGE_KEY_FILE = "age.key"


@dataclass(frozen=True)
class Identity:
    signer: Ed25519Signer
    age_identity: pyrage.x25519.Identity

    @property
    def public_key(self) -> bytes:
        return self.signer.public_key

    @property
    def age_recipient(self) -> str:
        return str(self.age_identity.to_public())

    def ssh_private_pem(self) -> bytes:
        """The agent key in OpenSSH format, as the SSH transport loads it."""
        return Ed25519PrivateKey.from_private_bytes(self.signer.seed).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )

    def ssh_public_key(self) -> str:
        return ssh_public_key_of(self.public_key)


def ssh_public_key_of(agent_id: bytes) -> str:
    """An agent's Ed25519 key as OpenSSH writes it (``ssh-ed25519 AAAA...``)."""
    key = Ed25519PublicKey.from_public_bytes(agent_id)
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def _write_secret(path: Path, data: bytes) -> None:
    """A new file only its owner may read (0600 whatever the umask), never an old one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except FileExistsError:
        raise ConfigError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {one_line(exc)}") from None


def identity_exists(home: Path) -> bool:
    return (home / AGENT_KEY_FILE).exists() or (home / AGE_KEY_FILE).exists()


def create_identity(home: Path) -> Identity:
    """Generate and store a new identity; refuses if any key file already exists."""
    if identity_exists(home):
        raise ConfigError(f"{home} already holds a node identity; refusing to overwrite it")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    age_identity = pyrage.x25519.Identity.generate()
    _write_secret(home / AGENT_KEY_FILE, pem)
    _write_secret(home / AGE_KEY_FILE, (str(age_identity) + "\n").encode())
    return Identity(Ed25519Signer(private.private_bytes_raw()), age_identity)


def load_identity(home: Path) -> Identity:
    agent_path = home / AGENT_KEY_FILE
    age_path = home / AGE_KEY_FILE
    try:
        pem = agent_path.read_bytes()
        age_text = age_path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{exc.filename} is missing: {home} is not a complete node home (see `bzzz init`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the keys in {home}: {exc}") from None
    try:
        private = serialization.load_ssh_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{agent_path}: not an unencrypted OpenSSH key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"{agent_path}: not an Ed25519 key")
    try:
        age_identity = pyrage.x25519.Identity.from_str(age_text)
    except Exception:
        raise ConfigError(f"{age_path}: not an age identity (AGE-SECRET-KEY-1...)") from None
    return Identity(Ed25519Signer(private.private_bytes_raw()), age_identity)

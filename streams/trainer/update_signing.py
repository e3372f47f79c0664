"""Ed25519 signatures on the model-updates topic: who may install a model on the workers.

    rtrank keys new --out keys/          # keys/update-signing.key (trainer), .pub (workers)
    RTRANK_UPDATE_SIGNING_KEY_FILE=keys/update-signing.key rtrank trainer
    RTRANK_UPDATE_VERIFY_KEY_FILE=keys/update-signing.pub rtrank worker

What a signature covers (`signed_message`): a context string, the model-updates topic's
name, and the fields the record stands for: for an update its kind, version, base and the
SHA-256 of its whole payload (so every byte of every chunk); for a rollback request its id
and target version. The topic name binds a signature to one deployment's stream: an update
copied from another topic (another deployment sharing the key, or a test stream) fails to
verify here, and an update copied from this topic's past is refused as stale by its version.

Readers with a verifying key refuse an unsigned record (``unsigned``) and one whose
signature does not verify (``bad_signature``). Without a key nothing is signed or checked:
behaviour as before signing existed. The trainer verifies what it reads (at resume, and
rollback requests) with the public half of its own key, so it never resumes from, or signs,
a model someone else wrote.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rtrank.model.update_error import UpdateError
from rtrank.streams.settings import Settings, SettingsError, variable

CONTEXT = "rtrank.model-updates.signature.v1"
PRIVATE_NAME, PUBLIC_NAME = "update-signing.key", "update-signing.pub"


class KeyFileError(SettingsError):
    """A key file cannot be read as the key it should hold (one line: which variable and
    file, why). A `SettingsError`: the ``rtrank`` command checks the key files at start."""


def signed_message(topic: str, fields: list) -> bytes:
    """The bytes a signature covers: the context, the topic, then ``fields`` (JSON)."""
    return json.dumps([CONTEXT, topic, *fields], separators=(",", ":")).encode()


@dataclass(frozen=True)
class UpdateKeys:
    """The keys one process holds for ``topic``: a signing key (the trainer, the rollback
    command) and/or a verifying key (every reader). Either may be None."""

    topic: str
    signing: Ed25519PrivateKey | None = None
    verifying: Ed25519PublicKey | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UpdateKeys:
        """Keys from ``RTRANK_UPDATE_SIGNING_KEY_FILE`` / ``RTRANK_UPDATE_VERIFY_KEY_FILE``;
        a signing key alone verifies with its own public half.

        Raises:
            KeyFileError: a named file is missing or holds no key of the right kind.
        """
        signing = verifying = None
        name = "update_signing_key_file"
        try:
            if settings.update_signing_key_file:
                signing = load_private_key(Path(settings.update_signing_key_file))
                verifying = signing.public_key()
            name = "update_verify_key_file"
            if settings.update_verify_key_file:
                verifying = load_public_key(Path(settings.update_verify_key_file))
        except KeyFileError as e:
            raise KeyFileError(f"{variable(name)}: {e}") from None
        return cls(settings.model_updates_topic, signing, verifying)

    def sign(self, fields: list) -> str | None:
        """The signature of ``fields`` (base64), or None without a signing key."""
        if self.signing is None:
            return None
        return base64.b64encode(self.signing.sign(signed_message(self.topic, fields))).decode()

    def verify(self, fields: list, signature: object, what: str) -> None:
        """Nothing when no verifying key is held or ``signature`` verifies.

        Raises:
            UpdateError: ``unsigned`` (no signature) or ``bad_signature``; ``what`` names the
                record in the message.
        """
        if self.verifying is None:
            return
        if not isinstance(signature, str) or not signature:
            raise UpdateError("unsigned", f"{what} is not signed")
        try:
            raw = base64.b64decode(signature, validate=True)
            self.verifying.verify(raw, signed_message(self.topic, fields))
        except (InvalidSignature, ValueError) as e:
            raise UpdateError(
                "bad_signature", f"{what}: signature does not verify for {self.topic!r}"
            ) from e


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Raises: KeyFileError."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Raises: KeyFileError."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return key


def new_key_pair(out: Path) -> tuple[Path, Path]:
    """Write a fresh key pair under ``out``: the private key readable by its owner only.

    Raises:
        FileExistsError: either file exists already (a key is never overwritten).
    """
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists already; not overwritten")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path

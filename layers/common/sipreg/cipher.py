"""Token encryption at rest: KMS, with the MSISDN as encryption context.

The Subscribers table holds only what `KmsCipher.encrypt` returns; a ciphertext copied to
another subscriber's item does not decrypt (the context differs), and plaintext tokens exist
only in memory.

KMS encrypts at most 4,096 bytes at once, and an identity server's JWT access token can be
longer. A longer token is encrypted in parts of 4,096 bytes, each with its place among them
("2/3") in its encryption context, so parts reordered, dropped or taken from another token do not
decrypt; a token of 4,096 bytes or fewer is one KMS ciphertext, as every token was before.
Parts, not envelope encryption: the same KMS permissions, and no cipher library on the worker's
cold path.
"""

from __future__ import annotations

from typing import Any, Protocol

# What KMS Encrypt takes at once.
PART_BYTES = 4096
# The parts' container: this prefix, then each part's KMS ciphertext after its length (2 bytes, big
# endian; a KMS ciphertext is at most 6,144 bytes). A single KMS ciphertext that began with these
# 13 bytes would be read as parts and fail to decrypt: never wrongly, at worst not at all.
PARTS_PREFIX = b"sipreg-parts:"


class Cipher(Protocol):
    def encrypt(self, plaintext: str, *, msisdn: str) -> bytes: ...

    def decrypt(self, ciphertext: bytes, *, msisdn: str) -> str: ...


class CiphertextError(ValueError):
    """A stored ciphertext is not one `KmsCipher` made (its parts are cut short)."""


class KmsCipher:
    """Encrypts each token with the data key; the MSISDN is the encryption context, so a
    ciphertext copied to another subscriber's item does not decrypt."""

    PURPOSE = "sipreg-oauth-token"

    def __init__(self, key_id: str, *, client: Any = None) -> None:
        if client is None:
            from sipreg.aws import client as aws_client  # noqa: PLC0415

            client = aws_client("kms")
        self._key_id = key_id
        self._kms = client

    def _context(self, msisdn: str, part: str | None = None) -> dict[str, str]:
        context = {"msisdn": msisdn, "purpose": self.PURPOSE}
        return context if part is None else {**context, "part": part}

    def encrypt(self, plaintext: str, *, msisdn: str) -> bytes:
        data = plaintext.encode()
        if len(data) <= PART_BYTES:
            return self._encrypt(data, self._context(msisdn))
        parts = [data[start : start + PART_BYTES] for start in range(0, len(data), PART_BYTES)]
        blobs = [
            self._encrypt(part, self._context(msisdn, f"{number}/{len(parts)}"))
            for number, part in enumerate(parts, start=1)
        ]
        return PARTS_PREFIX + b"".join(len(blob).to_bytes(2, "big") + blob for blob in blobs)

    def decrypt(self, ciphertext: bytes, *, msisdn: str) -> str:
        if not ciphertext.startswith(PARTS_PREFIX):
            return self._decrypt(ciphertext, self._context(msisdn)).decode()
        blobs = _parts(ciphertext[len(PARTS_PREFIX) :])
        return b"".join(
            self._decrypt(blob, self._context(msisdn, f"{number}/{len(blobs)}"))
            for number, blob in enumerate(blobs, start=1)
        ).decode()

    def _encrypt(self, data: bytes, context: dict[str, str]) -> bytes:
        answer = self._kms.encrypt(KeyId=self._key_id, Plaintext=data, EncryptionContext=context)
        blob: bytes = answer["CiphertextBlob"]
        return blob

    def _decrypt(self, blob: bytes, context: dict[str, str]) -> bytes:
        answer = self._kms.decrypt(KeyId=self._key_id, CiphertextBlob=blob, EncryptionContext=context)
        plaintext: bytes = answer["Plaintext"]
        return plaintext


def _parts(container: bytes) -> list[bytes]:
    blobs, at = [], 0
    while at < len(container):
        size = int.from_bytes(container[at : at + 2], "big")
        blob = container[at + 2 : at + 2 + size]
        if size == 0 or len(blob) != size:
            raise CiphertextError("a token's ciphertext in parts is cut short")
        blobs.append(blob)
        at += 2 + size
    if len(blobs) < 2:
        raise CiphertextError("a token's ciphertext in parts has fewer than two")
    return blobs

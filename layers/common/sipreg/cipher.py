"""Token encryption at rest: KMS, with the MSISDN as encryption context.

The Subscribers table holds only what `KmsCipher.encrypt` returns; a ciphertext copied to
another subscriber's item does not decrypt (the context differs), and plaintext tokens exist
only in memory.
"""

from __future__ import annotations

from typing import Any, Protocol


class Cipher(Protocol):
    def encrypt(self, plaintext: str, *, msisdn: str) -> bytes: ...

    def decrypt(self, ciphertext: bytes, *, msisdn: str) -> str: ...


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

    def _context(self, msisdn: str) -> dict[str, str]:
        return {"msisdn": msisdn, "purpose": self.PURPOSE}

    def encrypt(self, plaintext: str, *, msisdn: str) -> bytes:
        answer = self._kms.encrypt(
            KeyId=self._key_id, Plaintext=plaintext.encode(), EncryptionContext=self._context(msisdn)
        )
        blob: bytes = answer["CiphertextBlob"]
        return blob

    def decrypt(self, ciphertext: bytes, *, msisdn: str) -> str:
        answer = self._kms.decrypt(
            KeyId=self._key_id, CiphertextBlob=ciphertext, EncryptionContext=self._context(msisdn)
        )
        plaintext: bytes = answer["Plaintext"]
        return plaintext.decode()

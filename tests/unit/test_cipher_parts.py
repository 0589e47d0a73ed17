"""Given a KMS that encrypts at most 4,096 bytes and binds each ciphertext to its encryption context
(a fake at the KMS client's boundary), `KmsCipher` keeps a short token as one KMS ciphertext and a
long one in parts that decrypt only whole, in order, and for their own subscriber."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from sipreg.cipher import PART_BYTES, PARTS_PREFIX, CiphertextError, KmsCipher

MSISDN = "+4799990000"


class InvalidCiphertextError(Exception):
    pass


class BoundKms:
    """Encrypt and Decrypt as KMS answers them: at most 4,096 bytes in, ciphertexts only for
    the context they were made with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def encrypt(self, *, KeyId: str, Plaintext: bytes, EncryptionContext: dict[str, str]) -> Any:  # noqa: N803
        self.calls.append(("encrypt", len(Plaintext)))
        if not 1 <= len(Plaintext) <= PART_BYTES:
            raise ValueError(f"ValidationException: plaintext of {len(Plaintext)} bytes")
        sealed = {"context": EncryptionContext, "data": Plaintext.hex(), "salt": secrets.token_hex(4)}
        return {"CiphertextBlob": json.dumps(sealed).encode()}

    def decrypt(self, *, KeyId: str, CiphertextBlob: bytes, EncryptionContext: dict[str, str]) -> Any:  # noqa: N803
        self.calls.append(("decrypt", len(CiphertextBlob)))
        sealed = json.loads(CiphertextBlob)
        if sealed["context"] != EncryptionContext:
            raise InvalidCiphertextError
        return {"Plaintext": bytes.fromhex(sealed["data"])}


@pytest.fixture
def kms() -> BoundKms:
    return BoundKms()


def cipher(kms: BoundKms) -> KmsCipher:
    return KmsCipher("arn:aws:kms:eu-west-1:123456789012:key/1", client=kms)


def parts_of(ciphertext: bytes) -> list[bytes]:
    body, blobs = ciphertext[len(PARTS_PREFIX) :], []
    while body:
        size = int.from_bytes(body[:2], "big")
        blobs.append(body[2 : 2 + size])
        body = body[2 + size :]
    return blobs


def container(blobs: list[bytes]) -> bytes:
    return PARTS_PREFIX + b"".join(len(blob).to_bytes(2, "big") + blob for blob in blobs)


def test_a_token_of_4096_bytes_is_one_kms_ciphertext(kms: BoundKms) -> None:
    token = "t" * PART_BYTES
    ciphertext = cipher(kms).encrypt(token, msisdn=MSISDN)
    assert not ciphertext.startswith(PARTS_PREFIX)
    assert cipher(kms).decrypt(ciphertext, msisdn=MSISDN) == token
    assert kms.calls == [("encrypt", PART_BYTES), ("decrypt", len(ciphertext))]


def test_a_longer_token_is_encrypted_in_parts_kms_takes_and_decrypts_whole(kms: BoundKms) -> None:
    token = "eyJ" + "a" * 10_000  # a JWT access token of 10 KB
    ciphertext = cipher(kms).encrypt(token, msisdn=MSISDN)
    assert ciphertext.startswith(PARTS_PREFIX)
    assert [size for call, size in kms.calls] == [PART_BYTES, PART_BYTES, len(token) - 2 * PART_BYTES]
    assert cipher(kms).decrypt(ciphertext, msisdn=MSISDN) == token


def test_a_character_cut_between_parts_comes_back_whole(kms: BoundKms) -> None:
    token = "a" * (PART_BYTES - 1) + "é" * 10  # the first "é" straddles the first part's end
    assert cipher(kms).decrypt(cipher(kms).encrypt(token, msisdn=MSISDN), msisdn=MSISDN) == token


def test_parts_reordered_dropped_or_of_another_subscriber_do_not_decrypt(kms: BoundKms) -> None:
    blobs = parts_of(cipher(kms).encrypt("x" * (3 * PART_BYTES), msisdn=MSISDN))
    assert len(blobs) == 3
    for tampered in ([blobs[1], blobs[0], blobs[2]], blobs[:2], [blobs[0], blobs[1], blobs[1]]):
        with pytest.raises(InvalidCiphertextError):
            cipher(kms).decrypt(container(tampered), msisdn=MSISDN)
    with pytest.raises(InvalidCiphertextError):
        cipher(kms).decrypt(container(blobs), msisdn="+4799990001")
    # nor does one part taken for a whole token
    with pytest.raises(InvalidCiphertextError):
        cipher(kms).decrypt(blobs[0], msisdn=MSISDN)


@pytest.mark.parametrize(
    "cut", [lambda c: c[:-1], lambda c: c[: len(PARTS_PREFIX) + 1], lambda c: container(parts_of(c)[:1])]
)
def test_a_container_cut_short_is_refused_before_kms_is_asked(kms: BoundKms, cut: Any) -> None:
    ciphertext = cipher(kms).encrypt("x" * (2 * PART_BYTES), msisdn=MSISDN)
    kms.calls.clear()
    with pytest.raises(CiphertextError):
        cipher(kms).decrypt(cut(ciphertext), msisdn=MSISDN)
    assert kms.calls == []

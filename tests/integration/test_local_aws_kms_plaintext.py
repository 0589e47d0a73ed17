"""The local AWS's KMS encrypts at most 4,096 bytes at once, as KMS does; sipreg's token cipher
keeps a longer token (a JWT access token can be) in parts, which decrypt whole and only for their
own subscriber."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.aws_conformance.clients import client
from sipreg.cipher import PART_BYTES, PARTS_PREFIX, KmsCipher

MSISDN = "+4799990000"
CONTEXT = {"msisdn": MSISDN, "purpose": KmsCipher.PURPOSE}


@pytest.fixture
def kms_key(aws_endpoint: str) -> tuple[Any, str]:
    kms = client(aws_endpoint, "kms")
    return kms, kms.create_key(Description="tokens")["KeyMetadata"]["Arn"]


def test_more_than_4096_bytes_are_refused_and_4096_taken(kms_key: tuple[Any, str]) -> None:
    kms, key = kms_key
    with pytest.raises(ClientError) as refused:
        kms.encrypt(KeyId=key, Plaintext=b"x" * (PART_BYTES + 1), EncryptionContext=CONTEXT)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 4096" in refused.value.response["Error"]["Message"]
    sealed = kms.encrypt(KeyId=key, Plaintext=b"x" * PART_BYTES, EncryptionContext=CONTEXT)
    assert sealed["CiphertextBlob"]


def test_a_10_kb_token_is_kept_in_parts_and_comes_back_for_its_subscriber_only(
    kms_key: tuple[Any, str],
) -> None:
    kms, key = kms_key
    token = "eyJ" + "a" * 10_000
    tokens = KmsCipher(key, client=kms)
    ciphertext = tokens.encrypt(token, msisdn=MSISDN)
    assert ciphertext.startswith(PARTS_PREFIX)
    assert tokens.decrypt(ciphertext, msisdn=MSISDN) == token
    with pytest.raises(ClientError, match="InvalidCiphertext"):
        tokens.decrypt(ciphertext, msisdn="+4799990001")

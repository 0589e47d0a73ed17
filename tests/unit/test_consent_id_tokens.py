"""Given ID tokens signed by the identity server's keys (or not), the verifier accepts exactly the
ones whose signature, issuer, audience, expiry and nonce check out, and follows key rotation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from sipreg.consent.id_tokens import IdTokenError, IdTokenVerifier

ISSUER = "https://id.example"
CLIENT = "sipreg"
NOW = 1_800_000_000


def rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


KEY_1 = rsa("k1")
KEY_2 = rsa("k2")


class Jwks:
    def __init__(self, *keys: RSAKey) -> None:
        self.keys = list(keys)
        self.fetches = 0

    def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        return dict(KeySet(list(self.keys)).as_dict(private=False))


def id_token(key: Any = KEY_1, alg: str = "RS256", **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": CLIENT, "sub": "s1", "iat": NOW, "exp": NOW + 600, "nonce": "n1"}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": getattr(key, "kid", None) or "k1"}, body, key, algorithms=[alg])


def verifier(jwks: Jwks) -> IdTokenVerifier:
    return IdTokenVerifier(jwks, issuer=ISSUER, audience=CLIENT, clock=lambda: NOW)


def test_a_good_token_gives_its_claims_and_the_keys_are_fetched_once() -> None:
    jwks = Jwks(KEY_1)
    check = verifier(jwks)
    for _ in range(3):
        claims = check.verify(id_token(phone_number="+4799990000"), nonce="n1")
        assert claims["phone_number"] == "+4799990000"
    assert jwks.fetches == 1


@pytest.mark.parametrize(
    "claims",
    [
        {"nonce": "other"},
        {"nonce": None},
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"exp": NOW - 60},
        {"exp": None},
        {"aud": [CLIENT, "other-client"], "azp": "other-client"},
        {"aud": [CLIENT, "other-client"]},
        {"azp": "other-client"},
        {"azp": ""},
        {"sub": None},
        {"sub": 5},
        {"sub": ""},
        {"sub": "s" * 256},
        {"sub": "sübject"},
        {"sub": "line\nbreak"},
        {"iat": None},
        {"iat": str(NOW)},
        {"iat": True},
    ],
    ids=[
        "wrong-nonce",
        "no-nonce",
        "wrong-aud",
        "wrong-iss",
        "expired",
        "no-exp",
        "multi-aud-azp-other",
        "multi-aud-no-azp",
        "azp-other",
        "azp-empty",
        "no-sub",
        "sub-not-a-string",
        "sub-empty",
        "sub-past-255",
        "sub-not-ascii",
        "sub-not-printable",
        "no-iat",
        "iat-a-string",
        "iat-a-bool",
    ],
)
def test_a_token_failing_a_claim_check_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(IdTokenError):
        verifier(Jwks(KEY_1)).verify(id_token(**claims), nonce="n1")


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": [CLIENT, "other-client"], "azp": CLIENT},
        {"azp": CLIENT},
        {"aud": [CLIENT]},
    ],
    ids=["multi-aud-azp-us", "azp-us", "one-aud-in-a-list"],
)
def test_a_token_authorized_for_us_is_accepted(claims: dict[str, Any]) -> None:
    # OIDC Core §3.1.3.7: several audiences need azp, and an azp must be our client_id
    assert verifier(Jwks(KEY_1)).verify(id_token(**claims), nonce="n1")["sub"] == "s1"


@pytest.mark.parametrize("answer", [{}, {"keys": None}, {"keys": "x"}, {"keys": [5]}])
def test_a_key_set_without_usable_keys_is_refused_and_fetched_again_next_time(answer: Any) -> None:
    fetches: list[int] = []

    def broken() -> dict[str, Any]:
        fetches.append(1)
        return dict(answer)

    check = IdTokenVerifier(broken, issuer=ISSUER, audience=CLIENT, clock=lambda: NOW)
    for _ in range(2):
        with pytest.raises(IdTokenError):
            check.verify(id_token(), nonce="n1")
    assert len(fetches) == 2  # a broken answer is not kept: the next token asks again


def test_a_subject_of_255_ascii_characters_is_the_longest_accepted() -> None:
    claims = verifier(Jwks(KEY_1)).verify(id_token(sub="s" * 255), nonce="n1")
    assert claims["sub"] == "s" * 255


def test_a_token_signed_by_another_key_with_a_known_kid_is_refused() -> None:
    impostor = rsa("k1")
    with pytest.raises(IdTokenError):
        verifier(Jwks(KEY_1)).verify(id_token(key=impostor), nonce="n1")


def b64_json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    [{"alg": "RS256", "kid": "k1", "crit": 123}, {"alg": 123}, {"alg": "RS256", "kid": ["k1"]}, ["RS256"]],
)
def test_a_token_whose_header_is_malformed_is_refused(header: Any) -> None:
    token = f"{b64_json(header)}.{b64_json({'sub': 's1'})}.AAAA"
    with pytest.raises(IdTokenError):
        verifier(Jwks(KEY_1)).verify(token, nonce="n1")


def test_an_hmac_token_is_refused_even_when_keyed_with_public_material() -> None:
    secret = OctKey.import_key(b"k" * 32, parameters={"kid": "k1"})
    with pytest.raises(IdTokenError):
        verifier(Jwks(KEY_1)).verify(id_token(key=secret, alg="HS256"), nonce="n1")


def test_an_unknown_kid_refetches_the_keys_once_and_then_verifies() -> None:
    # Given keys cached before the identity server rotated to KEY_2
    jwks = Jwks(KEY_1)
    check = verifier(jwks)
    check.verify(id_token(), nonce="n1")
    jwks.keys = [KEY_2]
    # When a token signed with the new key arrives, Then one refetch makes it verify
    assert check.verify(id_token(key=KEY_2), nonce="n1")["sub"] == "s1"
    assert jwks.fetches == 2


def test_a_kid_unknown_even_after_refetch_is_refused() -> None:
    jwks = Jwks(KEY_1)
    with pytest.raises(IdTokenError):
        verifier(jwks).verify(id_token(key=KEY_2), nonce="n1")
    assert jwks.fetches == 2


def test_the_error_message_carries_no_token() -> None:
    token = id_token(nonce="zzz")
    with pytest.raises(IdTokenError) as caught:
        verifier(Jwks(KEY_1)).verify(token, nonce="n1")
    assert token not in str(caught.value)

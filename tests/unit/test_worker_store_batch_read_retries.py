"""BatchGetItem leaves keys unprocessed when throttled: they are asked again, a bounded number of
times, and a key never answered is left out of the result rather than taken for missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from sipreg.store import batch_read
from sipreg.store.registrations import RegistrationStore

TABLE = "Registrations-stubbed"
MSISDN = "+4799990042"
A, B = "sips:a.example", "sips:b.example"


def wire_key(sip_uri: str) -> dict[str, dict[str, str]]:
    return {"msisdn": {"S": MSISDN}, "sip_uri": {"S": sip_uri}}


def wire_item(sip_uri: str) -> dict[str, dict[str, str]]:
    return {
        **wire_key(sip_uri),
        "status": {"S": "active"},
        "updated_at": {"S": "2026-01-01T12:00:00Z"},
        "version": {"N": "3"},
    }


def request(*uris: str) -> dict[str, object]:
    """As the store asks (the resource's client serialises the values after the stub sees them)."""
    keys = [{"msisdn": MSISDN, "sip_uri": u} for u in uris]
    return {"RequestItems": {TABLE: {"Keys": keys, "ConsistentRead": True}}}


def answer(found: list[str], unprocessed: list[str]) -> dict[str, object]:
    left = {TABLE: {"Keys": [wire_key(u) for u in unprocessed]}} if unprocessed else {}
    return {"Responses": {TABLE: [wire_item(u) for u in found]}, "UnprocessedKeys": left}


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RegistrationStore, Stubber]]:
    monkeypatch.setattr(batch_read, "PAUSE_SECONDS", 0.0)
    store = RegistrationStore(TABLE)
    with Stubber(store._table.meta.client) as stubber:  # the port's AWS boundary
        yield store, stubber
        stubber.assert_no_pending_responses()


def test_unprocessed_keys_are_asked_again_until_answered(store: tuple[RegistrationStore, Stubber]) -> None:
    registrations_store, stubber = store
    stubber.add_response("batch_get_item", answer([], [A, B]), request(A, B))
    stubber.add_response("batch_get_item", answer([A], [B]), request(A, B))
    stubber.add_response("batch_get_item", answer([], []), request(B))
    found = registrations_store.get_many([(MSISDN, A), (MSISDN, B)])
    assert found[(MSISDN, B)] is None
    record = found[(MSISDN, A)]
    assert record is not None and record.version == 3


def test_keys_still_unprocessed_after_the_last_round_are_left_out(
    store: tuple[RegistrationStore, Stubber],
) -> None:
    registrations_store, stubber = store
    stubber.add_response("batch_get_item", answer([A], [B]), request(A, B))
    for _ in range(batch_read.ATTEMPTS - 1):
        stubber.add_response("batch_get_item", answer([], [B]), request(B))
    found = registrations_store.get_many([(MSISDN, A), (MSISDN, B)])
    assert list(found) == [(MSISDN, A)]  # B unknown, not "no record": the worker reads it itself

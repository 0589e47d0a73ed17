"""Given the OAuthStates table on moto server (key schema and TTL attribute from template.yaml),
a state is consumed exactly once, even by callbacks racing each other, and never after expiry."""

from __future__ import annotations

import threading
import time
import uuid

import boto3
import pytest

from devstack import TEMPLATE
from devstack.host.template import load_template
from sipreg.store.oauth_states import OAuthState, OAuthStateStore, StateProblem, StateRefusedError


@pytest.fixture
def store(aws: str) -> OAuthStateStore:
    props = load_template(TEMPLATE)["Resources"]["OAuthStatesTable"]["Properties"]
    name = f"states-{uuid.uuid4().hex[:8]}"
    dynamodb = boto3.client("dynamodb", endpoint_url=aws)
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode="PAY_PER_REQUEST",
    )
    assert props["TimeToLiveSpecification"]["AttributeName"] == "expires"
    return OAuthStateStore(name)


def state(expires_in: float = 600) -> OAuthState:
    now = time.time()
    return OAuthState(
        state=uuid.uuid4().hex,
        code_verifier="v" * 64,
        nonce="n",
        created_at=now,
        expires_at=now + expires_in,
        return_to="https://crm.example/done",
    )


def test_a_state_comes_back_once_with_what_start_kept(store: OAuthStateStore) -> None:
    kept = state()
    store.put(kept)
    back = store.consume(kept.state, now=time.time())
    assert (back.code_verifier, back.nonce, back.return_to) == (kept.code_verifier, "n", kept.return_to)
    with pytest.raises(StateRefusedError) as caught:
        store.consume(kept.state, now=time.time())
    assert caught.value.reason is StateProblem.UNKNOWN


def test_an_expired_state_is_refused_as_expired(store: OAuthStateStore) -> None:
    kept = state(expires_in=-1)
    store.put(kept)
    with pytest.raises(StateRefusedError) as caught:
        store.consume(kept.state, now=time.time())
    assert caught.value.reason is StateProblem.EXPIRED


def test_racing_callbacks_consume_a_state_exactly_once(store: OAuthStateStore) -> None:
    kept = state()
    store.put(kept)
    barrier = threading.Barrier(4)
    won: list[OAuthState] = []
    refused: list[StateProblem] = []

    def callback() -> None:
        barrier.wait()
        try:
            won.append(store.consume(kept.state, now=time.time()))
        except StateRefusedError as error:
            refused.append(error.reason)

    threads = [threading.Thread(target=callback) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(won) == 1
    assert refused == [StateProblem.UNKNOWN] * 3

"""Given a stored consent, `access_token_for` hands out valid tokens, refreshes them in time, and
turns a refused refresh into a revoked consent; with fakes at the store, KMS and identity ports."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from sipreg.store.subscribers import ConsentStatus
from sipreg.tokens import (
    ConsentMissing,
    ConsentRevoked,
    IdentityServerRejectedError,
    IdentityServerUnavailableError,
    TokenService,
)
from tests.support.consent_fakes import UNAVAILABLE, Clock, FakeCipher, FakeIdentityServer, FakeSubscribers

MSISDN = "+4799990001"


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.store = FakeSubscribers()
        self.cipher = FakeCipher()
        self.identity = FakeIdentityServer(self.clock)
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None
        self.tokens = self.service()

    def service(self) -> TokenService:
        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.on_sleep()

        return TokenService(
            store=self.store,
            cipher=self.cipher,
            identity=self.identity,
            service_scope="call.control:answer_and_initiate",
            refresh_margin_seconds=120,
            lease_seconds=30,
            clock=self.clock,
            sleep=sleep,
        )

    def consent(self, msisdn: str = MSISDN) -> str:
        answer = self.identity.issue(msisdn)
        self.tokens.record_consent(msisdn, answer, subject="sub-1")
        return answer.access_token


@pytest.fixture
def world() -> World:
    return World()


def test_warm_path_touches_no_store_kms_or_identity_server(world: World) -> None:
    # Given a consent just recorded (which also warms the cache)
    token = world.consent()
    gets, decrypts = world.store.gets, world.cipher.decrypts
    # When the token is asked for many times within its life
    answers = {world.tokens.access_token_for(MSISDN) for _ in range(100)}
    # Then it is the same token, with no I/O at all
    assert answers == {token}
    assert (world.store.gets, world.cipher.decrypts, world.identity.refresh_calls) == (gets, decrypts, 0)


def test_cold_process_decrypts_the_stored_token_once(world: World) -> None:
    token = world.consent()
    other_process = world.service()
    assert other_process.access_token_for(MSISDN) == token
    assert other_process.access_token_for(MSISDN) == token
    assert world.cipher.decrypts == 1


def test_token_is_refreshed_when_less_than_the_margin_remains(world: World) -> None:
    # Given a consent whose access token has 119 s left
    old = world.consent()
    old_refresh = next(iter(world.identity.live_refresh))
    world.clock.now += 3600 - 119
    # When a token is asked for
    new = world.tokens.access_token_for(MSISDN)
    # Then it was refreshed, and the rotated refresh token is what is stored now (encrypted)
    assert new != old
    assert world.identity.refresh_calls == 1
    record = world.store.records[MSISDN]
    assert record.refresh_lease_until is None
    assert record.refresh_token_ciphertext is not None
    stored_refresh = world.cipher.decrypt(record.refresh_token_ciphertext, msisdn=MSISDN)
    assert stored_refresh != old_refresh
    assert stored_refresh in world.identity.live_refresh
    assert record.access_expires_at == pytest.approx(world.clock.now + 3600)


def test_token_with_more_than_the_margin_left_is_not_refreshed(world: World) -> None:
    token = world.consent()
    world.clock.now += 3600 - 121
    assert world.tokens.access_token_for(MSISDN) == token
    assert world.identity.refresh_calls == 0


def test_invalid_grant_marks_consent_revoked_and_is_not_retried(world: World) -> None:
    # Given a consent whose refresh token the identity server no longer knows
    world.consent()
    world.identity.live_refresh.clear()
    world.clock.now += 3600
    # When a token is asked for, Then ConsentRevoked
    with pytest.raises(ConsentRevoked):
        world.tokens.access_token_for(MSISDN)
    # And the subscriber is marked revoked without tokens
    record = world.store.records[MSISDN]
    assert record.status is ConsentStatus.REVOKED
    assert record.revoked_reason == "invalid_grant at refresh"
    assert (record.access_token_ciphertext, record.refresh_token_ciphertext) == (None, None)
    # And asking again does not call the identity server again
    with pytest.raises(ConsentRevoked):
        world.tokens.access_token_for(MSISDN)
    assert world.identity.refresh_calls == 1


def test_unknown_subscriber_is_consent_missing(world: World) -> None:
    with pytest.raises(ConsentMissing):
        world.tokens.access_token_for("+4799990999")


def test_transient_failure_releases_the_lease_and_keeps_the_tokens(world: World) -> None:
    world.consent()
    world.clock.now += 3600
    world.identity.fail_with = UNAVAILABLE
    with pytest.raises(IdentityServerUnavailableError):
        world.tokens.access_token_for(MSISDN)
    record = world.store.records[MSISDN]
    assert record.status is ConsentStatus.CONSENTED
    assert record.refresh_lease_until is None
    # And once the server is back, the same refresh token works
    world.identity.fail_with = None
    assert world.tokens.access_token_for(MSISDN)


def test_configuration_error_is_reported_as_rejected_not_revoked(world: World) -> None:
    world.consent()
    world.clock.now += 3600
    world.identity.fail_with = IdentityServerRejectedError("invalid_client")
    with pytest.raises(IdentityServerRejectedError):
        world.tokens.access_token_for(MSISDN)
    assert world.store.records[MSISDN].status is ConsentStatus.CONSENTED


def test_force_refresh_refreshes_a_token_the_core_refused(world: World) -> None:
    refused = world.consent()
    fresh = world.tokens.access_token_for(MSISDN, force_refresh=True)
    assert fresh != refused
    assert world.identity.refresh_calls == 1


def test_force_refresh_uses_a_newer_token_another_process_stored(world: World) -> None:
    # Given this process handed out a token, and another process refreshed since
    refused = world.consent()
    other = world.service()
    world.clock.now += 3600 - 60
    newer = other.access_token_for(MSISDN)
    # When the core refuses our old token and we force a refresh
    again = world.tokens.access_token_for(MSISDN, force_refresh=True)
    # Then we get the other process's token, without a second refresh
    assert again == newer != refused
    assert world.identity.refresh_calls == 1


def test_waits_for_a_refresh_in_flight_elsewhere_and_uses_its_result(world: World) -> None:
    # Given another process holds the refresh lease
    world.consent()
    world.clock.now += 3600 - 10
    record = world.store.records[MSISDN]
    world.store.save(
        record.model_copy(update={"refresh_lease_until": world.clock.now + 30}), read_version=record.version
    )
    other = world.service()
    results: list[str] = []

    def finish_other_refresh() -> None:
        # ...which finishes while we wait: it clears the lease and stores new tokens
        if not results:
            leased = world.store.records[MSISDN]
            world.store.save(
                leased.model_copy(update={"refresh_lease_until": None}), read_version=leased.version
            )
            results.append(other.access_token_for(MSISDN))

    world.on_sleep = finish_other_refresh
    # When we ask for a token
    token = world.tokens.access_token_for(MSISDN)
    # Then we waited, did not refresh ourselves, and use the winner's token
    assert world.sleeps
    assert token == results[0]
    assert world.identity.refresh_calls == 1


def test_two_threads_in_one_process_refresh_once(world: World) -> None:
    world.consent()
    world.clock.now += 3600
    start = threading.Barrier(2)
    answers: list[str] = []

    def ask() -> None:
        start.wait()
        answers.append(world.tokens.access_token_for(MSISDN))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1
    assert world.identity.refresh_calls == 1


def test_revoked_consent_is_refused_without_calling_anyone(world: World) -> None:
    world.consent()
    world.tokens.revoke(MSISDN)
    with pytest.raises(ConsentRevoked):
        world.service().access_token_for(MSISDN)
    assert world.identity.refresh_calls == 0


def test_no_token_appears_in_log_lines(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world.consent()
    world.clock.now += 3600
    token = world.tokens.access_token_for(MSISDN)
    world.identity.live_refresh.clear()
    world.clock.now += 3600
    with pytest.raises(ConsentRevoked) as caught:
        world.tokens.access_token_for(MSISDN)
    text = caplog.text + str(caught.value) + repr(world.store.records[MSISDN])
    assert caplog.records  # it did log
    assert token not in text
    assert MSISDN not in caplog.text  # masked


def test_a_waiter_takes_the_winners_token_even_when_it_is_already_due_by_our_margin(world: World) -> None:
    # Given tokens that live shorter than our margin (every token looks due), and a refresh in flight
    world.consent()
    record = world.store.records[MSISDN]
    world.store.save(
        record.model_copy(update={"refresh_lease_until": world.clock.now + 30}), read_version=record.version
    )
    impatient = TokenService(
        store=world.store,
        cipher=world.cipher,
        identity=world.identity,
        service_scope="call.control:answer_and_initiate",
        refresh_margin_seconds=10_000,
        clock=world.clock,
        sleep=lambda _: finish_other_refresh(),
    )
    winner: list[str] = []

    def finish_other_refresh() -> None:
        if not winner:
            leased = world.store.records[MSISDN]
            world.store.save(
                leased.model_copy(update={"refresh_lease_until": None}), read_version=leased.version
            )
            winner.append(world.service().access_token_for(MSISDN, force_refresh=True))

    # When it asks, Then it uses the winner's token instead of refreshing a second time
    assert impatient.access_token_for(MSISDN) == winner[0]
    assert world.identity.refresh_calls == 1

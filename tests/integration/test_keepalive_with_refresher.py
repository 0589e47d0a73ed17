"""Given template.yaml on the local host (worker on the SQS source, refresher on its schedule) and a
core whose clock runs 600 times faster (a registration's 3600 s live 6 real seconds), the
registrations stay alive across several TTLs while the refresher runs, and die once it stops.
(6 s, not less: the schedule, the queue's poll and the worker must fit into the margin on a
loaded 2-core machine too.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from devstack import TEMPLATE
from devstack.host import LocalHost
from devstack.scenario import wait_for
from devstack.wg2sim.oidc.config import DEV_CLIENT
from devstack.wg2sim.process import Wg2simProcess
from sipreg.models import ApiVersion
from sipreg.queue import EventQueue
from sipreg.store.registrations import RegistrationStatus, RegistrationStore
from sipreg.store.subscribers import SubscriberStore
from sipreg.tokens import SERVICE_SCOPES, KmsCipher, OAuthClient, TokenResponse, TokenService
from tests.support.worker import REGION
from tests.support.worker_events import upsert

# A 6 s TTL, refreshed with seconds to spare: a machine busy with other tests eats that margin.
pytestmark = pytest.mark.serial

CORE_SCALE = 600  # core seconds per real second: the 3600 s TTL lasts 6 s
SCHEDULE_FACTOR = 1200  # rate(5 minutes) fires every 0.25 s
TTL_REAL = 3600 / CORE_SCALE
PBX = "sips:pbx.acme.example"


@pytest.fixture(scope="module")
def fast_core() -> Iterator[Wg2simProcess]:
    with Wg2simProcess.start(time_scale=CORE_SCALE, token_ttl=10**9) as sim:
        yield sim


@pytest.fixture
def host(aws_endpoint: str, fast_core: Wg2simProcess, tmp_path: Path) -> Iterator[LocalHost]:
    running = LocalHost(
        TEMPLATE,
        aws_endpoint,
        region=REGION,
        stack_name=f"ka{uuid.uuid4().hex[:8]}",
        time_factor=SCHEDULE_FACTOR,
        parameter_overrides={
            "CoreEndpoint": fast_core.grpc_target,
            "IdentityServerUrl": fast_core.http_url,
            "ClientId": DEV_CLIENT.client_id,
            # Not what this test is about, and each costs the margin seconds on 2 cores: the
            # health check's minute would fire 20 times a second, and every extra worker
            # sandbox is a cold start of seconds while refreshes wait on the queue.
            "HealthCheckSchedule": "rate(1 hour)",
            "WorkerMaxConcurrency": "2",
        },
        secret_values={"OAuthClientSecret": DEV_CLIENT.client_secret},
        # wg2sim answers time_to_live in real seconds (3 s here), so expiries need no scaling.
        env_overrides={"CORE_PLAINTEXT": "true", "RETRY_BASE_SECONDS": "0"},
        # Refresh what expires within 4 real seconds (2400 core seconds).
        function_env_overrides={"RefresherFunction": {"REFRESH_MARGIN_SECONDS": "4"}},
        log_dir=tmp_path / "logs",
        sqs_wait_seconds=1,
    )
    with running:
        yield running


def consent(host: LocalHost, sim: Wg2simProcess, msisdn: str) -> None:
    """Stored as the consent callback stores it, with a core token that outlives the test."""
    resources = host.resources
    tokens = TokenService(
        store=SubscriberStore(resources["SubscribersTable"]["Ref"]),
        cipher=KmsCipher(resources["DataKey"]["Arn"]),
        identity=OAuthClient(
            sim.http_url, client_id=DEV_CLIENT.client_id, client_secret=lambda _: DEV_CLIENT.client_secret
        ),
        service_scope=SERVICE_SCOPES[ApiVersion.V0],
    )
    token = sim.mint_token(msisdn, ttl=10**9)
    answer = TokenResponse(access_token=token, expires_at=time.time() + 10**6, scopes=("openid",))
    tokens.record_consent(msisdn, answer, subject=None)


def upserts(sim: Wg2simProcess) -> int:
    calls = sim.stats()["calls"]
    return sum(counts.get("OK", 0) for name, counts in calls.items() if name.endswith("/UpsertRegistration"))


def test_registrations_live_across_several_ttls_while_the_refresher_runs_and_die_when_it_stops(
    host: LocalHost, fast_core: Wg2simProcess, new_msisdn: Callable[[], str], aws: str
) -> None:
    numbers = [new_msisdn() for _ in range(3)]
    for msisdn in numbers:
        consent(host, fast_core, msisdn)
    # Given three registrations applied through the queue and the worker
    queue = EventQueue(host.resources["EventsQueue"]["Ref"])
    assert queue.send([upsert(msisdn=msisdn, sip_uri=PBX) for msisdn in numbers]).complete

    def alive() -> set[str]:
        return {r["msisdn"] for r in fast_core.registrations()} & set(numbers)

    wait_for("every number on the core", lambda: alive() == set(numbers), timeout=20)
    store = RegistrationStore(host.resources["RegistrationsTable"]["Ref"])
    assert {store.get(m, PBX).status for m in numbers} == {RegistrationStatus.ACTIVE}  # type: ignore[union-attr]
    calls_at_start = upserts(fast_core)
    # When three TTLs pass with the refresher running: the core holds all three all the time
    gaps: list[tuple[float, set[str]]] = []
    started = time.monotonic()
    while time.monotonic() - started < 3 * TTL_REAL:
        holding = alive()
        if holding != set(numbers):
            gaps.append((round(time.monotonic() - started, 2), set(numbers) - holding))
        time.sleep(0.1)
    assert gaps == [], f"registrations missing on the core at (seconds, numbers): {gaps}"
    # Then each was refreshed about once per (TTL - margin), not on every run of the refresher
    refreshes = upserts(fast_core) - calls_at_start
    assert 3 * len(numbers) <= refreshes <= 3 * TTL_REAL / 1.0 * len(numbers), refreshes
    # And sipreg's idea of each expiry is the core's (to the second the admin API shows)
    for core_view in fast_core.registrations():
        if core_view["msisdn"] in numbers:
            record = store.get(core_view["msisdn"], PBX)
            assert record is not None and record.expires_at is not None
            core_expiry = datetime.fromisoformat(core_view["expires_at"])
            assert abs((record.expires_at - core_expiry).total_seconds()) < 1.5
    # When the stack stops (no refresher runs any more)
    host.stop()
    stopped = time.monotonic()
    # Then the core drops them within one TTL
    wait_for("every registration expired", lambda: alive() == set(), timeout=TTL_REAL + 2)
    assert time.monotonic() - stopped <= TTL_REAL + 2

"""Given a core that refuses a registration with 500 KB of text (gRPC carries up to 4 MB an answer),
the worker records the refusal with the text clipped. Whole, it would not fit: DynamoDB refuses an
item over 400 KB, so the commit would fail and the message come back until the DLQ took it
(the local AWS engine, wg2sim's identity server, and a core of the test's own on a loopback port)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.store.registrations import RegistrationStatus
from sipreg.text import PEER_TEXT_LIMIT
from tests.support.worker import Rig, build_rig, received, status_events_queue
from tests.support.worker_events import upsert

PBX = "sips:pbx.acme.example:5061"
REFUSAL = "the core will not route this number: " + "no " * 170_000


class WordyCore:
    """Duck-typed servicer (as wg2sim's: the generated base class adds nothing)."""

    def UpsertRegistration(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return v0.UpsertRegistrationResponse(status_code=v0.STATUS_CODE_NOT_ACCEPTABLE, error_message=REFUSAL)

    def DeleteRegistration(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return v0.DeleteRegistrationResponse(status_code=v0.STATUS_CODE_NOT_ACCEPTABLE, error_message=REFUSAL)


@pytest.fixture
def wordy_core() -> Iterator[str]:
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    v0_grpc.add_SipBreakoutServiceServicer_to_server(WordyCore(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture
def rig(aws: str, wg2sim: Wg2simProcess, wordy_core: str) -> Iterator[Rig]:
    yield build_rig(aws, wg2sim, core_endpoint=wordy_core, max_tries=2)


def test_a_refusal_of_500_kb_is_recorded_clipped_once_and_published(
    rig: Rig, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    rig.consent(msisdn)
    bus = status_events_queue(rig)
    # When an upsert meets the core's 500 KB refusal
    rig.send(upsert("wordy", msisdn=msisdn, sip_uri=PBX))
    rig.drain()
    # Then it is recorded rejected at the first delivery, with the text's first lines
    record = rig.record(msisdn, PBX)
    assert record is not None and record.status is RegistrationStatus.REJECTED
    last_error = record.last_error or ""
    assert last_error.startswith("the core will not route this number: no no")
    assert len(last_error) <= PEER_TEXT_LIMIT
    assert [(e.event_id, e.outcome, e.tries) for e in rig.log(msisdn)] == [("wordy", "rejected", 1)]
    assert all(d.failed == [] for d in rig.deliveries) and rig.queue_depth(rig.dlq_url) == 0
    # And the status bus has the change, its reason clipped the same way
    [change] = [event["detail"] for event in received(rig, bus, at_least=1)]
    assert change["new_status"] == "rejected" and change["reason"] == last_error

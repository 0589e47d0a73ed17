"""Producers and operators on the stack `sipreg devstack up` started: producers post events with the
webhook secret and can do nothing else; operators use `sipreg status` and `sipreg revoke` with AWS
credentials (the local operator, holding the stack's OperatorPolicy)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import boto3
import httpx

from devstack.scenario import Scenario, upsert
from sipreg import signing
from tests.e2e.conftest import SIPREG


def sipreg(
    devstack: dict[str, Any], *args: str, as_operator: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIPREG_API": devstack["api"], "AWS_REGION": devstack["region"]}
    if as_operator:
        env["AWS_ACCESS_KEY_ID"] = devstack["operator"]["access_key_id"]
        env["AWS_SECRET_ACCESS_KEY"] = devstack["operator"]["secret_access_key"]
    else:  # a producer's AWS credentials (ProducerPolicy: the queue only)
        env["AWS_ACCESS_KEY_ID"] = devstack["producer"]["access_key_id"]
        env["AWS_SECRET_ACCESS_KEY"] = devstack["producer"]["secret_access_key"]
    return subprocess.run(
        [str(SIPREG), *args], check=False, capture_output=True, text=True, timeout=30, env=env
    )


def test_an_operator_reads_and_revokes_with_the_cli_and_a_producer_cannot(
    pbx: str, devstack: dict[str, Any], scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given a number the CRM provisioned
    msisdn = new_msisdn()
    assert scenario.send([upsert("who-1", msisdn, "fork", pbx, source="crm")]).accepted == ["who-1"]
    scenario.wait_for("the event logged", lambda: scenario.status(msisdn))
    # When the producer's secret asks for its status or revokes it
    path = f"/v1/registrations/{quote(msisdn, safe='')}"
    read = httpx.get(
        devstack["api"] + path, headers=signing.signed_headers(devstack["webhook_secret"], "GET", path)
    )
    revoke = scenario.post_signed(f"/v1/subscribers/{quote(msisdn, safe='')}/revoke")
    # Then both are forbidden
    assert (read.status_code, revoke.status_code) == (403, 403)
    # And the producer's AWS credentials cannot either
    refused = sipreg(devstack, "status", msisdn, as_operator=False)
    assert refused.returncode == 2 and "execute-api:Invoke" in refused.stderr
    # When the operator asks with the CLI
    status = sipreg(devstack, "status", msisdn, "--json")
    revoked = sipreg(devstack, "revoke", msisdn)
    # Then it reads the number's event and queues the revoke
    assert status.returncode == 0, status.stderr
    assert '"who-1"' in status.stdout
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoke of {msisdn} queued" in revoked.stdout
    scenario.wait_for(
        "the revoke applied",
        lambda: any(
            e["event_type"] == "subscriber.revoke" for e in (scenario.status(msisdn) or {})["events"]
        ),
    )


def test_a_v0_stack_refuses_a_v1_route_type_at_the_api_naming_it(
    pbx: str, scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given the session stack calls SipBreakoutService v0
    msisdn = new_msisdn()
    # When the CRM asks for LOOP_MO (v1 only)
    outcome = scenario.send([upsert("v0-loop-mo", msisdn, "loop_mo", pbx, source="crm")])
    # Then the API refuses it at once, naming the field, and sipreg knows nothing of the number
    assert "registration.route_type" in outcome.rejected["v0-loop-mo"]
    assert scenario.status(msisdn) is None


def test_a_producer_cannot_revoke_a_subscriber_by_sending_sipregs_own_event_to_the_queue(
    pbx: str, devstack: dict[str, Any], scenario: Scenario, new_msisdn: Callable[[], str]
) -> None:
    # Given a consenting subscriber whose registration is on the core
    msisdn = new_msisdn()
    assert scenario.consent(msisdn).granted
    assert scenario.send([upsert("forge-1", msisdn, "fork", pbx, source="crm")]).accepted == ["forge-1"]
    scenario.wait_for(
        "the registration active",
        lambda: (scenario.registration(msisdn, pbx) or {}).get("status") == "active",
    )
    # When a producer's role (ProducerPolicy: it may send to the queue) sends a revoke straight there
    producer = {
        "endpoint_url": devstack["aws_endpoint"],
        "region_name": devstack["region"],
        "aws_access_key_id": devstack["producer"]["access_key_id"],
        "aws_secret_access_key": devstack["producer"]["secret_access_key"],
    }
    sqs = boto3.client("sqs", **producer)
    forged = {"id": "forge-revoke", "type": "subscriber.revoke", "msisdn": msisdn, "occurred_at": _now()}
    sqs.send_message(
        QueueUrl=devstack["queues"]["EventsQueue"],
        MessageBody=json.dumps(forged),
        MessageGroupId=msisdn,
        MessageDeduplicationId="forge-revoke",
    )
    # Then the worker records it rejected, naming the producer as its sender (SQS's SenderId)
    rejected = scenario.wait_for(
        "the forged revoke recorded",
        lambda: next(
            (e for e in (scenario.status(msisdn) or {})["events"] if e["event_type"] == "subscriber.revoke"),
            None,
        ),
    )
    assert rejected is not None and rejected["outcome"] == "rejected", rejected
    assert "sipreg's own event type" in rejected["reason"]
    assert boto3.client("sts", **producer).get_caller_identity()["UserId"] in rejected["reason"]
    # And the registration stays on the core
    assert (scenario.registration(msisdn, pbx) or {}).get("status") == "active"
    assert any(number == msisdn for number, _, _ in scenario.core_keys()), "it left the core"


def _now() -> str:
    return datetime.now(UTC).isoformat()

"""The dead-letter path on the real template, through the host's own SQS event source mapping:
an event the core keeps failing comes back (failed in the batch response), is moved to the DLQ by
the worker after its MaxTries own tries and shows `dead_lettered` in the status API, and `sipreg
redrive` brings it back (`pending`) once the core has recovered, where it applies."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from devstack.aws_engine import ROOT
from devstack.host.template import load_template
from devstack.scenario import Scenario, upsert
from tests.e2e.conftest import REPO, SIPREG


def max_tries() -> int:
    return int(load_template(REPO / "template.yaml")["Parameters"]["MaxTries"]["Default"])


def dead_lettered(scenario: Scenario, msisdn: str) -> list[dict[str, Any]]:
    return [m for m in scenario.dead_letters() if json.loads(m["Body"]).get("msisdn") == msisdn]


def redrive_as_operator(devstack: dict[str, Any], msisdn: str) -> subprocess.CompletedProcess[str]:
    """`sipreg redrive --msisdn` as the local operator: an IAM user holding only OperatorPolicy."""
    return subprocess.run(
        [
            str(SIPREG),
            "redrive",
            "--queue-url",
            devstack["queues"]["EventsQueue"],
            "--endpoint-url",
            devstack["aws_endpoint"],
            "--msisdn",
            msisdn,
            "--event-log-table",
            devstack["resources"]["EventLogTable"],
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={
            **os.environ,
            "AWS_REGION": devstack["region"],
            "AWS_ACCESS_KEY_ID": devstack["operator"]["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": devstack["operator"]["secret_access_key"],
        },
    )


def test_an_event_the_core_keeps_failing_lands_in_the_dlq_and_redrive_applies_it(
    pbx: str, core_faults: Scenario, new_msisdn: Callable[[], str], devstack: dict[str, Any], tmp_path: Path
) -> None:
    scenario = core_faults
    # Given a consented subscriber whose calls the core answers UNAVAILABLE, every time
    msisdn = new_msisdn()
    assert scenario.consent(msisdn).granted
    scenario.set_core_faults(unavailable_rate=1.0, msisdns=[msisdn])
    failed_before = scenario.core_calls("UpsertRegistration").get("UNAVAILABLE", 0)
    # When the CRM sends an upsert for them
    assert scenario.send([upsert("dlq-1", msisdn, "fork", pbx, source="crm")]).accepted == ["dlq-1"]
    # Then after its MaxTries tries the message is on the DLQ, unchanged
    found = scenario.wait_for("the event on the DLQ", lambda: dead_lettered(scenario, msisdn), 40)
    assert json.loads(found[0]["Body"])["id"] == "dlq-1"
    # And the core saw every try, none applied; the status API says where it is and why
    assert scenario.core_calls("UpsertRegistration").get("UNAVAILABLE", 0) - failed_before >= max_tries()
    status = scenario.status(msisdn) or {}
    [registration] = status["registrations"]
    assert registration["status"] == "failed"
    assert f"dead-lettered after {max_tries()} tries" in registration["last_error"]
    [event] = [e for e in status["events"] if e["event_id"] == "dlq-1"]
    assert (event["outcome"], event["tries"]) == ("dead_lettered", max_tries())
    assert not any(number == msisdn for number, _, _ in scenario.core_keys())

    # And another number's dead letter waits beside it (put there as the worker would)
    other = new_msisdn()
    root = boto3.client(
        "sqs",
        endpoint_url=devstack["aws_endpoint"],
        region_name=devstack["region"],
        aws_access_key_id=ROOT.access_key_id,
        aws_secret_access_key=ROOT.secret_access_key,
    )
    dlq = devstack["queues"]["EventsDeadLetterQueue"]
    letter = json.dumps(upsert("dlq-other", other, "fork", pbx, source="crm"))
    root.send_message(
        QueueUrl=dlq, MessageBody=letter, MessageGroupId=other, MessageDeduplicationId="dlq-other"
    )

    # When the core recovers and the operator redrives that number's dead letters
    scenario.clear_core_faults()
    redrive = redrive_as_operator(devstack, msisdn)
    assert redrive.returncode == 0, redrive.stderr
    assert f"moved 1 message(s) of {msisdn}" in redrive.stdout
    assert "1 of them now pending" in redrive.stdout
    # Then the event is applied and the DLQ holds nothing of that number
    scenario.wait_for(
        "the registration on the core",
        lambda: (msisdn, "FORK", pbx) in scenario.core_keys(),
        15,
    )
    assert (scenario.registration(msisdn, pbx) or {}).get("status") == "active"
    assert dead_lettered(scenario, msisdn) == []
    [event] = [e for e in (scenario.status(msisdn) or {})["events"] if e["event_id"] == "dlq-1"]
    assert event["outcome"] == "active"
    # And the other number's letter is still on the DLQ, visible again at once (released, not
    # hidden until the redrive's look at it times out)
    [kept] = dead_lettered(scenario, other)
    # A peek's receipt (visibility 0) has expired at once: a FIFO queue deletes nothing with it
    [taken] = root.receive_message(QueueUrl=dlq, VisibilityTimeout=30)["Messages"]
    assert taken["MessageId"] == kept["MessageId"]
    root.delete_message(QueueUrl=dlq, ReceiptHandle=taken["ReceiptHandle"])


def test_an_operators_control_that_was_dead_lettered_applies_when_the_operator_redrives_it(
    pbx: str, core_faults: Scenario, new_msisdn: Callable[[], str], devstack: dict[str, Any]
) -> None:
    scenario = core_faults
    # Given an active registration, and a core that then answers that number UNAVAILABLE
    msisdn = new_msisdn()
    assert scenario.consent(msisdn).granted
    assert scenario.send([upsert("dlq-ctl-1", msisdn, "fork", pbx, source="crm")]).accepted == ["dlq-ctl-1"]
    scenario.wait_for(
        "the registration on the core", lambda: (msisdn, "FORK", pbx) in scenario.core_keys(), 15
    )
    scenario.set_core_faults(unavailable_rate=1.0, msisdns=[msisdn])
    # When an operator disables it (an internal event, sent by the events API's role), and the
    # worker dead-letters it after its tries
    code, _ = scenario.control("disable", msisdn, pbx, reason="fraud check")
    assert code == 202
    found = scenario.wait_for("the disable on the DLQ", lambda: dead_lettered(scenario, msisdn), 40)
    assert json.loads(found[0]["Body"])["type"] == "registration.disable"
    # And the operator redrives it once the core is back: SQS now names the operator as its sender
    scenario.clear_core_faults()
    redrive = redrive_as_operator(devstack, msisdn)
    assert redrive.returncode == 0, redrive.stderr
    # Then the worker applies it as sipreg's own event: the registration leaves the core, disabled
    scenario.wait_for(
        "the registration off the core", lambda: (msisdn, "FORK", pbx) not in scenario.core_keys(), 15
    )
    assert (scenario.registration(msisdn, pbx) or {}).get("status") == "disabled"
    assert not [e for e in (scenario.status(msisdn) or {})["events"] if e["outcome"] == "rejected"]

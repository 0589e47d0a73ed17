"""tests/permission_mutants.py finds every permission of template.yaml and removes each one alone."""

from __future__ import annotations

from pathlib import Path

from devstack.host.template import load_template
from tests.permission_mutants import (
    TEMPLATE,
    Permission,
    permissions,
    read_report,
    refused_for,
    write_mutant,
    write_report,
)


def test_every_action_of_every_policy_is_a_permission_of_its_own() -> None:
    template = load_template(TEMPLATE)
    found = permissions(template)
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        documents = [p for p in properties.get("Policies") or [] if isinstance(p, dict) and "Statement" in p]
        documents += [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
        for statement in (s for document in documents for s in document["Statement"]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                sid = statement["Sid"]
                assert any(p.owner == logical_id and f" {sid}: {action}" in p.label for p in found), (
                    f"{logical_id} {sid} {action}"
                )
    # SAM policy templates count whole, as the template names them
    assert any(
        p.label == "Policies[0] SQSPollerPolicy" for p in found if p.owner == "RegistrationWorkerFunction"
    )


def test_each_mutant_lacks_exactly_its_permission(tmp_path: Path) -> None:
    original = load_template(TEMPLATE)
    mutant = tmp_path / "template.yaml"
    for permission in permissions(original):
        write_mutant(permission, mutant)  # raises when anything else changed
        assert load_template(mutant) != original, permission


def test_an_update_reads_back_the_rows_it_wrote(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    rows = [
        (
            "RegistrationWorkerFunction",
            "Policies[0] SQSPollerPolicy",
            "killed",
            "`tests/e2e/x.py::t`",
            "94",
            "2026-12-02",
        ),
        ("OperatorPolicy", "PolicyDocument SendEvents: sqs:SendMessage", "survived", "", "213", "2026-12-02"),
    ]
    write_report(rows, report)
    assert read_report(report) == {(row[0], row[1]): row for row in rows}
    assert "1 of 2 permissions" in report.read_text()


def test_only_a_refusal_of_the_permissions_holder_is_evidence() -> None:
    batch_read = Permission(
        "RegistrationWorkerFunction", "Registrations", ("Resources",), ("dynamodb:BatchGetItem",)
    )
    worker = "arn:aws:sts::000000000000:assumed-role/s-RegistrationWorkerFunctionRole-X1/s-Fn"
    events_api = "arn:aws:sts::000000000000:assumed-role/s-EventsApiFunctionRole-X2/s-Fn"
    assert refused_for(batch_read, {(worker, "dynamodb:BatchGetItem")})
    assert not refused_for(batch_read, {(events_api, "dynamodb:BatchGetItem")})  # a test's deliberate one
    assert not refused_for(batch_read, {(worker, "dynamodb:GetItem")})
    producer = Permission("ProducerPolicy", "SendEvents", ("Resources",), ("sqs:SendMessage",))
    assert refused_for(
        producer, {("arn:aws:iam::000000000000:user/sipreg-local-producer", "sqs:SendMessage")}
    )

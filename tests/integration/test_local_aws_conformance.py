"""The local AWS keeps the rules sipreg relies on (devstack.aws_conformance), checked on the engine
every integration and e2e test runs against. bench/aws_engines.py runs the same checks on the
candidates (moto fails each of them; see the README)."""

from __future__ import annotations

from devstack.aws_conformance import policies, sqs_fifo, transactions


def test_a_fifo_group_is_never_in_flight_twice_and_keeps_its_order_after_crashes(aws_endpoint: str) -> None:
    # Given five pollers draining 8 groups of 12 messages, a fifth of their batches abandoned
    report = sqs_fifo.fifo_groups(aws_endpoint, crash_rate=0.2)
    # Then every message was delivered in its group's order, to one poller at a time, and none lost
    assert report.abandoned > 0, "no poller crashed: the redelivery rule was not exercised"
    assert report.deleted == report.messages
    assert report.violations == []


def test_fifo_receipt_handles_expire_and_deduplication_is_per_group_for_five_minutes(
    aws_endpoint: str,
) -> None:
    # Given a FIFO queue deduplicating per message group, When messages are sent, received late,
    # deleted with stale handles and sent again, Then each of AWS's five rules holds
    report = sqs_fifo.fifo_rules(aws_endpoint)
    assert report.checked == 5
    assert report.violations == []


def test_concurrent_transactions_are_atomic_isolated_and_never_answer_500(aws_endpoint: str) -> None:
    # Given six writers racing on three versioned counters in a table of 2,000 items
    report = transactions.transactions(aws_endpoint)
    # Then some lost the race (the check ran), and every write is accounted for
    assert report.cancelled > 0 and report.committed > 0
    assert report.server_errors == 0
    assert report.violations == []


def test_a_role_session_is_refused_what_its_policies_do_not_allow(aws_endpoint: str) -> None:
    # Given a role allowed one table, one queue and one KMS encryption context
    report = policies.iam_policies(aws_endpoint)
    # Then its session may use exactly those, BatchGetItem and other tables and contexts refused
    assert report.checked == 9
    assert report.violations == []


def test_callers_of_encrypted_queues_secrets_and_tables_need_the_keys_permission_for_their_context(
    aws_endpoint: str,
) -> None:
    # Given a role allowed an encrypted queue, secret and table, first without the key, then with
    # the key only through each service for that resource's encryption context
    report = policies.via_service_kms(aws_endpoint)
    # Then without the key every call is refused, with it every call is allowed
    assert report.checked == 8
    assert report.violations == []

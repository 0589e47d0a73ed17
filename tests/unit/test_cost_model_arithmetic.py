"""The cost model's arithmetic (sipreg_cli/cost.py): volumes, units, prices, and the docs' price table."""

from __future__ import annotations

import re
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from sipreg_cli import main
from sipreg_cli.cost import (
    HOURS_PER_MONTH,
    PRICES_DATE,
    Counts,
    Prices,
    Scenario,
    monthly_cost,
    read_units,
    unit_work,
    volumes,
    write_units,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cost.md"


def test_a_registration_is_refreshed_once_per_ttl_less_margin_plus_half_a_period() -> None:
    s = Scenario(subscribers=1, refresh_margin_seconds=1200, schedule_seconds=300)
    assert s.refresh_interval_seconds == 3600 - 1200 + 150
    assert volumes(s).refreshes == pytest.approx(HOURS_PER_MONTH * 3600 / 2550)


def test_a_wider_margin_or_a_longer_period_changes_the_refresh_count_as_the_interval_says() -> None:
    narrow = volumes(Scenario(subscribers=1000, refresh_margin_seconds=600)).refreshes
    wide = volumes(Scenario(subscribers=1000, refresh_margin_seconds=2400)).refreshes
    assert wide / narrow == pytest.approx((3600 - 600 + 150) / (3600 - 2400 + 150))
    slow = volumes(Scenario(subscribers=1000, schedule_seconds=600)).refreshes
    assert slow < volumes(Scenario(subscribers=1000)).refreshes


def test_dynamodb_units_follow_the_size_rules() -> None:
    assert write_units(0.3) == 1
    assert write_units(1.2) == 2
    assert write_units(0.6, transactional=True) == 2
    assert read_units(3.9) == 1
    assert read_units(4.1) == 2
    assert read_units(1, consistent=False) == 0.5
    assert read_units(1, transactional=True) == 2


def test_a_refresh_writes_its_record_and_log_item_in_a_transaction_and_moves_the_index() -> None:
    refresh = unit_work(Counts(registration_kb=0.9, event_log_kb=0.4, refresh_transactions=1))["refresh"]
    assert refresh.write_units == 2 + 2 + 2  # record (transactional), log item (transactional), index
    # A strong read of the record in the batch, half a unit for the refresher's eventual query.
    assert refresh.read_units == 1 + 0.5


def test_refresh_traffic_dominates_in_client_mode_at_every_scale() -> None:
    for n in (10_000, 100_000, 1_000_000):
        cost = monthly_cost(Scenario(subscribers=n, auth_mode="client"))
        assert cost.by_work["refresh"] > 0.5 * cost.total
        assert cost.by_work["token_renewal"] == cost.by_work["token_read"] == 0


def test_user_mode_adds_token_work_and_its_kms_calls() -> None:
    user = monthly_cost(Scenario(subscribers=100_000))
    client = monthly_cost(Scenario(subscribers=100_000, auth_mode="client"))
    assert user.by_work["token_renewal"] > 0
    assert user.by_service["KMS"] > 100 * client.by_service["KMS"]
    assert user.total > client.total


def test_with_3600_s_tokens_and_a_2550_s_interval_every_other_use_renews() -> None:
    v = volumes(Scenario(subscribers=1000, changes_per_day=0))
    assert v.token_renewals == pytest.approx(v.refreshes / 2)


def test_the_lambda_cost_of_refreshes_is_their_billed_time_at_512_mb_and_their_share_of_invocations() -> None:
    counts = Counts(worker_ms_per_batch=200, refresher_ms_per_due=0)
    s = Scenario(subscribers=10_000, changes_per_day=0, consents_per_month=0, auth_mode="client")
    p = Prices()
    with_refreshes = monthly_cost(s, counts, p).by_service["Lambda"]
    without = monthly_cost(Scenario(subscribers=0, auth_mode="client", consents_per_month=0), counts, p)
    n = volumes(s).refreshes
    expected = n * (0.020 * 0.5 * p.lambda_gb_second + 0.1 * p.lambda_request)
    assert with_refreshes - without.by_service["Lambda"] == pytest.approx(expected)


def test_variable_cost_scales_with_subscribers() -> None:
    fixed = monthly_cost(Scenario(subscribers=0, consents_per_month=0)).total
    small = monthly_cost(Scenario(subscribers=10_000)).total - fixed
    large = monthly_cost(Scenario(subscribers=100_000)).total - fixed
    # Token-cache hits fade as subscribers outgrow the sandboxes' caches, so a little more than 10x.
    assert 10 <= large / small < 11


def docs_prices() -> dict[str, float]:
    """The docs' table: `| name | price |` rows for every Prices field."""
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| \$?([0-9.e-]+) \|", DOCS.read_text(), re.MULTILINE))
    return {name: float(value) for name, value in rows.items()}


def test_the_docs_price_table_is_the_models_price_table() -> None:
    assert docs_prices() == pytest.approx(asdict(Prices()))
    assert {f.name for f in fields(Prices)} == set(docs_prices())
    assert PRICES_DATE in DOCS.read_text()


def test_the_command_prints_the_total_and_the_refreshes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--subscribers", "10000", "--auth-mode", "client"]) == 0
    out = capsys.readouterr().out
    total = monthly_cost(Scenario(subscribers=10_000, auth_mode="client")).total
    assert re.search(rf"total +\$ *{re.escape(f'{total:,.2f}')}", out)
    assert "refreshes" in out


def test_client_mode_reads_the_consent_record_once_per_change_and_user_mode_never() -> None:
    client = volumes(Scenario(subscribers=1000, changes_per_day=200, auth_mode="client"))
    user = volumes(Scenario(subscribers=1000, changes_per_day=200))
    assert client.consent_checks == client.changes > 0
    assert user.consent_checks == 0
    cost = monthly_cost(Scenario(subscribers=1000, changes_per_day=200, auth_mode="client"))
    assert cost.by_work["consent_check"] > 0
    assert unit_work(Counts(subscriber_kb=0.3))["consent_check"].read_units == 1

"""`sipreg cost`: what a deployed sipreg costs on AWS each month, from counted requests.

    sipreg cost --subscribers 100000                       # changes: 1 % of subscribers a day
    sipreg cost --subscribers 100000 --changes-per-day 5000 --auth-mode client --json

The model multiplies how often each kind of work happens (CRM/billing events, keep-alive
refreshes, consents, token renewals, refresher runs) by what one of it uses (requests, units,
Lambda time, log bytes: counted from real runs by `make bench`, defaults below), then by the unit
prices (eu-west-1; the table with its date is docs/cost.md, checked against PRICES by a test).
`make bench` runs the same model with the counts of its own run (bench/cost.py).

Assumptions: one registration per subscriber; every active registration is re-upserted once per
3600 - margin + period/2 seconds (the refresher picks it up in the first run after it enters the
margin); batches of 10; 512 MB functions; no free tier.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
TTL_SECONDS = 3600.0  # the core drops a registration this long after its last upsert
TOKEN_MARGIN_SECONDS = 120.0  # TokenService renews a token this close to its expiry
PRICES_DATE = "2025-06"  # when the prices below were AWS's published eu-west-1 list prices


@dataclass(frozen=True)
class Prices:
    """USD per unit, eu-west-1 (docs/cost.md has the same table; a test keeps them equal)."""

    lambda_gb_second: float = 0.0000166667  # x86_64
    lambda_request: float = 0.20 / 1e6
    sqs_fifo_request: float = 0.50 / 1e6  # per 64 KB chunk
    dynamodb_write_unit: float = 0.7068 / 1e6  # on-demand, after the 2024-11 price cut
    dynamodb_read_unit: float = 0.1415 / 1e6
    dynamodb_storage_gb_month: float = 0.283
    dynamodb_pitr_gb_month: float = 0.2264
    kms_request: float = 0.03 / 1e4
    kms_key_month: float = 1.00
    eventbridge_event: float = 1.00 / 1e6  # custom bus PutEvents entries; scheduled rules are free
    http_api_request: float = 1.11 / 1e6  # API Gateway HTTP API, first 300 M a month
    logs_ingested_gb: float = 0.57
    logs_stored_gb_month: float = 0.03
    metric_month: float = 0.30  # custom metric (name + dimensions), first 10,000
    alarm_month: float = 0.10  # standard resolution
    dashboard_month: float = 3.00
    xray_trace: float = 5.00 / 1e6  # recorded
    secret_month: float = 0.40


@dataclass(frozen=True)
class Work:
    """What one unit of work uses on AWS, all functions it passes through together."""

    lambda_invocations: float = 0.0
    lambda_ms: float = 0.0  # billed duration
    sqs_requests: float = 0.0
    read_units: float = 0.0
    write_units: float = 0.0
    kms_requests: float = 0.0
    eventbridge_events: float = 0.0
    api_requests: float = 0.0
    log_bytes: float = 0.0


def write_units(kilobytes: float, *, transactional: bool = False) -> float:
    """DynamoDB write units of one item write: 1 per started KB, twice that in a transaction."""
    return math.ceil(kilobytes) * (2 if transactional else 1)


def read_units(kilobytes: float, *, consistent: bool = True, transactional: bool = False) -> float:
    """Read units of one item read: 1 per started 4 KB (strong), half eventually, twice in a transaction."""
    units = math.ceil(kilobytes / 4)
    return units * 2 if transactional else units * (1 if consistent else 0.5)


@dataclass(frozen=True)
class Counts:
    """Per unit of work. Measured by `make bench` on 2026-12-02 (bench/out/worker.json and
    refresher.json; its run replaces them) unless marked estimated."""

    batch: float = 10.0  # events per worker invocation (and per SQS send, receive, delete)
    worker_ms_per_batch: float = 248.0  # a batch of 10 at 50 ms core latency
    registration_kb: float = 0.89  # a Registrations item
    event_log_kb: float = 0.36  # an EventLog item
    subscriber_kb: float = 1.6  # estimated: a Subscribers item with real tokens (the bench's are short)
    # The worker's DynamoDB requests per event, warm: a tenth of a BatchGetItem, then its writes.
    change_transactions: float = 2.0  # claim, then outcome (2 items each: registration + log)
    refresh_transactions: float = 1.0  # outcome only (refreshes claim nothing)
    refresher_items_read_per_due: float = 1.0
    # Estimated from here on (local times say little about Lambda's).
    status_events_per_change: float = 1.0  # RegistrationStatusChanged (a route change alone sends none)
    refresher_run_ms: float = 300.0  # a run's fixed part (16 shard queries)
    refresher_ms_per_due: float = 1.0
    api_ms: float = 30.0  # the events API's invocation per POST
    consent_ms: float = 400.0  # oauth_start + oauth_callback (token exchange at the identity server)
    token_renewal_ms: float = 150.0  # a worker's call to the identity server's token endpoint
    invocation_log_bytes: float = 1500.0  # START/END/REPORT lines and the metrics blob (EMF)
    change_log_bytes: float = 600.0  # an INFO line per change (refreshes log at DEBUG only)


@dataclass(frozen=True)
class Scenario:
    subscribers: int
    changes_per_day: float | None = None  # None: 1 % of the subscribers a day
    auth_mode: str = "user"  # user: per-subscriber tokens (KMS); client: one product token
    refresh_margin_seconds: float = 1200.0
    schedule_seconds: float = 300.0
    access_token_seconds: float = 3600.0  # the identity server's access-token lifetime
    consents_per_month: float | None = None  # None: 2 % of the subscribers a month
    worker_concurrency: int = 5  # MaximumConcurrency of the queue's event source
    token_cache_size: int = 10_000  # per worker sandbox (TokenService.CACHE_SIZE)
    log_retention_months: float = 3.0  # LogRetentionDays 90
    metrics: int = 30  # custom metrics (name + dimension sets) the functions emit
    alarms: int = 5
    dashboards: int = 1
    secrets: int = 2

    @property
    def changes(self) -> float:
        return self.subscribers / 100 if self.changes_per_day is None else self.changes_per_day

    @property
    def refresh_interval_seconds(self) -> float:
        return TTL_SECONDS - self.refresh_margin_seconds + self.schedule_seconds / 2


@dataclass(frozen=True)
class Volumes:
    """How often each kind of work happens in a month."""

    changes: float
    refreshes: float
    consents: float
    token_renewals: float  # user mode: calls to the identity server's token endpoint
    token_reads: float  # refreshes and changes whose sandbox holds no valid cached token
    consent_checks: float  # client mode: changes that first read the subscriber's revocation marker
    refresher_runs: float


def volumes(s: Scenario) -> Volumes:
    refreshes = s.subscribers * HOURS_PER_MONTH * TTL_SECONDS / s.refresh_interval_seconds
    changes = s.changes * DAYS_PER_MONTH
    user = s.auth_mode == "user"
    # A sandbox's token cache helps only if the event lands on the sandbox that saw the subscriber
    # last (1 in `worker_concurrency`) and the cache is big enough to still hold it.
    # A token renewed at one use still serves the uses that follow within its lifetime (less the
    # TokenService's 120 s margin): with a refresh every ~2550 s and 3600 s tokens, every other one.
    uses_per_token = (
        math.floor((s.access_token_seconds - TOKEN_MARGIN_SECONDS) / s.refresh_interval_seconds) + 1
    )
    fits = s.subscribers / s.worker_concurrency <= s.token_cache_size
    hit = 1 / s.worker_concurrency if fits else 0.0
    return Volumes(
        changes=changes,
        refreshes=refreshes,
        consents=(0.02 * s.subscribers if s.consents_per_month is None else s.consents_per_month),
        token_renewals=(refreshes + changes) / uses_per_token if user else 0.0,
        token_reads=(refreshes + changes) * (1 - hit) if user else 0.0,
        # Client mode: an upsert other than a refresh reads the number's consent record first (a
        # revoked consent stops it; sipreg.worker.core_call). Deletes are counted alike: few.
        consent_checks=0.0 if user else changes,
        refresher_runs=HOURS_PER_MONTH * 3600 / s.schedule_seconds,
    )


def unit_work(c: Counts) -> dict[str, Work]:
    """What each kind of work uses (see Counts for where the numbers come from)."""
    per_batch = 1 / c.batch
    reg_read = read_units(c.registration_kb) * per_batch * c.batch  # BatchGetItem: 1 item per event
    log_write = write_units(c.event_log_kb, transactional=True)
    reg_write = write_units(c.registration_kb, transactional=True)
    gsi_move = 2 * write_units(c.registration_kb)  # RefreshDue's key moves: delete + put (ALL projected)
    worker_invocation = Work(
        lambda_invocations=per_batch,
        lambda_ms=c.worker_ms_per_batch * per_batch,
        sqs_requests=2 * per_batch,  # the poller's ReceiveMessage and DeleteMessageBatch
        log_bytes=c.invocation_log_bytes * per_batch,
    )
    change = _plus(
        worker_invocation,
        Work(
            lambda_invocations=1,  # the events API
            lambda_ms=c.api_ms,
            sqs_requests=1,  # its SendMessage
            read_units=reg_read,
            write_units=c.change_transactions * (reg_write + log_write) + gsi_move,
            eventbridge_events=c.status_events_per_change,
            api_requests=1,
            log_bytes=c.invocation_log_bytes + c.change_log_bytes,
        ),
    )
    refresh = _plus(
        worker_invocation,
        Work(
            sqs_requests=per_batch,  # the refresher's SendMessageBatch
            read_units=reg_read + c.refresher_items_read_per_due * read_units(c.registration_kb) / 2,
            write_units=c.refresh_transactions * (reg_write + log_write) + gsi_move,
            lambda_ms=c.refresher_ms_per_due,
        ),
    )
    sub_write = write_units(c.subscriber_kb)
    return {
        "change": change,
        "refresh": refresh,
        # oauth_start (state put) + oauth_callback (state delete, 2 encrypts, subscriber put, queue send)
        "consent": Work(
            lambda_invocations=2,
            lambda_ms=c.consent_ms,
            sqs_requests=1,
            write_units=2 * write_units(0.5) + sub_write,
            kms_requests=2,
            api_requests=2,
            log_bytes=2 * c.invocation_log_bytes,
        ),
        # lease save, decrypt the refresh token, encrypt both new tokens, save
        "token_renewal": Work(
            lambda_ms=c.token_renewal_ms,
            read_units=read_units(c.subscriber_kb),
            write_units=2 * sub_write,
            kms_requests=3,
        ),
        # a cache miss: the subscriber's record read and its access token decrypted
        "token_read": Work(read_units=read_units(c.subscriber_kb), kms_requests=1),
        # client mode: the subscriber's record read, strongly (a revocation marker, or nothing)
        "consent_check": Work(read_units=read_units(c.subscriber_kb)),
        "refresher_run": Work(
            lambda_invocations=1,
            lambda_ms=c.refresher_run_ms,
            read_units=16 * 0.5,  # one eventually consistent query per shard, at least
            log_bytes=c.invocation_log_bytes,
        ),
    }


def _plus(a: Work, b: Work) -> Work:
    return Work(**{k: getattr(a, k) + getattr(b, k) for k in asdict(a)})


def _times(w: Work, n: float) -> Work:
    return Work(**{k: v * n for k, v in asdict(w).items()})


@dataclass(frozen=True)
class Cost:
    """Monthly USD by service, and by kind of work."""

    by_service: dict[str, float]
    by_work: dict[str, float]
    volumes: Volumes
    scenario: Scenario
    counts: Counts = field(default_factory=Counts)

    @property
    def total(self) -> float:
        return sum(self.by_service.values())

    @property
    def per_subscriber(self) -> float:
        return self.total / self.scenario.subscribers if self.scenario.subscribers else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscribers": self.scenario.subscribers,
            "auth_mode": self.scenario.auth_mode,
            "total": self.total,
            "per_subscriber": self.per_subscriber,
            "by_service": self.by_service,
            "by_work": self.by_work,
            "volumes": asdict(self.volumes),
            "scenario": asdict(self.scenario),
        }


def _usage_cost(w: Work, p: Prices, memory_gb: float) -> dict[str, float]:
    return {
        "Lambda": w.lambda_ms / 1000 * memory_gb * p.lambda_gb_second
        + w.lambda_invocations * p.lambda_request,
        "SQS FIFO": w.sqs_requests * p.sqs_fifo_request,
        "DynamoDB": w.read_units * p.dynamodb_read_unit + w.write_units * p.dynamodb_write_unit,
        "KMS": w.kms_requests * p.kms_request,
        "EventBridge": w.eventbridge_events * p.eventbridge_event,
        "API Gateway": w.api_requests * p.http_api_request,
        "CloudWatch": w.log_bytes / 1e9 * p.logs_ingested_gb,
        "X-Ray": 0.0,
    }


def monthly_cost(s: Scenario, counts: Counts | None = None, prices: Prices | None = None) -> Cost:
    c, p = counts or Counts(), prices or Prices()
    v = volumes(s)
    work = unit_work(c)
    how_often = {
        "change": v.changes,
        "refresh": v.refreshes,
        "consent": v.consents,
        "token_renewal": v.token_renewals,
        "token_read": v.token_reads,
        "consent_check": v.consent_checks,
        "refresher_run": v.refresher_runs,
    }
    by_service: dict[str, float] = dict.fromkeys(_usage_cost(Work(), p, 0.5), 0.0)
    by_work: dict[str, float] = {}
    invocations = log_bytes = 0.0
    for kind, n in how_often.items():
        used = _times(work[kind], n)
        invocations += used.lambda_invocations
        log_bytes += used.log_bytes
        costs = _usage_cost(used, p, memory_gb=0.5)
        by_work[kind] = sum(costs.values())
        for service, amount in costs.items():
            by_service[service] += amount
    # Tracing: Active samples the first invocation each second and 5 % of the rest.
    per_second = HOURS_PER_MONTH * 3600
    traces = min(invocations, per_second) + 0.05 * max(0.0, invocations - per_second)
    by_service["X-Ray"] = traces * p.xray_trace
    kb = c.registration_kb + c.subscriber_kb + c.event_log_kb * (v.changes / max(s.subscribers, 1))
    refresh_logs_kept = v.refreshes / s.subscribers * 3 / DAYS_PER_MONTH if s.subscribers else 0.0
    stored_gb = s.subscribers * (kb + c.registration_kb + refresh_logs_kept * c.event_log_kb) / 1e6
    fixed = {
        "DynamoDB": stored_gb * (p.dynamodb_storage_gb_month + p.dynamodb_pitr_gb_month),
        "KMS": p.kms_key_month,
        "CloudWatch": s.metrics * p.metric_month
        + s.alarms * p.alarm_month
        + s.dashboards * p.dashboard_month
        + log_bytes / 1e9 * s.log_retention_months * p.logs_stored_gb_month,
        "Secrets Manager": s.secrets * p.secret_month,
    }
    by_service["Secrets Manager"] = 0.0
    for service, amount in fixed.items():
        by_service[service] += amount
    by_work["storage, tracing, fixed"] = by_service["X-Ray"] + sum(fixed.values())
    return Cost(by_service, by_work, v, s, c)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("cost", help="monthly AWS cost for a number of subscribers")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--changes-per-day", type=float, help="CRM/billing events a day (default: 1 %% of N)")
    parser.add_argument("--auth-mode", choices=["user", "client"], default="user")
    parser.add_argument("--refresh-margin", type=float, default=1200.0, help="RefreshMarginSeconds")
    parser.add_argument("--schedule-minutes", type=float, default=5.0, help="the RefreshSchedule's period")
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    scenario = Scenario(
        subscribers=args.subscribers,
        changes_per_day=args.changes_per_day,
        auth_mode=args.auth_mode,
        refresh_margin_seconds=args.refresh_margin,
        schedule_seconds=args.schedule_minutes * 60,
    )
    cost = monthly_cost(scenario)
    if args.json:
        print(json.dumps(cost.as_dict(), indent=2))
        return 0
    print(render(cost))
    return 0


def render(cost: Cost) -> str:
    s, v = cost.scenario, cost.volumes
    lines = [
        f"{s.subscribers:,} subscribers, {s.changes:,.0f} changes a day, auth mode {s.auth_mode}, "
        f"prices eu-west-1 {PRICES_DATE}",
        f"  a month: {v.refreshes:,.0f} refreshes (one per {s.refresh_interval_seconds:.0f} s each), "
        f"{v.changes:,.0f} changes, {v.consents:,.0f} consents, {v.token_renewals:,.0f} token renewals",
    ]
    lines += [f"  {name:<24} ${amount:>12,.2f}" for name, amount in cost.by_service.items()]
    lines.append(f"  {'total':<24} ${cost.total:>12,.2f}   (${cost.per_subscriber:.4f} per subscriber)")
    lines.append("  by kind of work:")
    lines += [f"    {name:<22} ${amount:>12,.2f}" for name, amount in cost.by_work.items()]
    return "\n".join(lines)


def with_counts(counts: Counts, **measured: float) -> Counts:
    """Counts with the measured figures of a bench run in place of the defaults."""
    return replace(counts, **measured)

"""The chaos run: the storm (producers sending while faults are on and sandboxes are killed),
then the wait until the system settles, then the checks."""

from __future__ import annotations

import random
import time

from devstack.chaos.checks import Observer, outcomes, queue_empty
from devstack.chaos.plan import ChaosConfig, Plan, plan
from devstack.chaos.producers import Producer
from devstack.chaos.report import ChaosReport
from devstack.stack import LocalStack
from devstack.stack_options import StackOptions

WORKER = "RegistrationWorkerFunction"


def stack_options(config: ChaosConfig) -> StackOptions:
    return StackOptions(
        auth_mode="client",
        log_dir=config.log_dir,
        log_level="WARNING",
        token_ttl=130,  # with the worker's 120 s margin: a new product token every 10 s
        parameter_overrides={"RetryBaseSeconds": "1", "RetryMaxSeconds": "5", "CoreDeadlineSeconds": "1"},
        # A killed batch comes back after the visibility timeout: the shortest the worker's 30 s allows.
        property_overrides={"EventsQueue": {"VisibilityTimeout": 30}},
    )


def run(config: ChaosConfig, stack: LocalStack | None = None) -> ChaosReport:
    rng = random.Random(config.seed)
    the_plan = plan(config, rng)
    own = stack is None
    stack = stack or LocalStack(stack_options(config)).start()
    report = ChaosReport(numbers=len(the_plan.events))
    try:
        _storm(stack, the_plan, config, report)
        _settle(stack, the_plan, config, report)
        stats = stack.sim.stats()
        calls = stats["calls"]
        report.faults.update(stats.get("faults_injected", {}))
        report.core_calls = sum(
            sum(outcomes.values()) for path, outcomes in calls.items() if "SipBreakout" in path
        )
        outcomes(stack, the_plan.all_events, report)
    finally:
        if own:
            stack.stop()
    return report


def _faults(stack: LocalStack, config: ChaosConfig, *, identity_down: bool) -> None:
    stack.sim.set_faults(
        unavailable_rate=config.unavailable_rate, stall_rate=config.stall_rate, identity_down=identity_down
    )


def _storm(stack: LocalStack, the_plan: Plan, config: ChaosConfig, report: ChaosReport) -> None:
    info = stack.ready_info()
    numbers = list(the_plan.events)
    producers = [
        Producer(
            p,
            through_api=p % 2 == 0,
            numbers=numbers[p :: config.producers],
            plan=the_plan,
            info=info,
            config=config,
        )
        for p in range(config.producers)
    ]
    observer = Observer(stack, the_plan)
    started = time.monotonic()
    _faults(stack, config, identity_down=False)
    for producer in producers:
        producer.start()
    outage_at = None
    kills_left = config.kills
    next_kill = started + config.storm_seconds / (config.kills + 1)
    last_sample = 0.0
    while any(p.is_alive() for p in producers):
        now = time.monotonic()
        sent = sum(p.sent for p in producers)
        if outage_at is None and sent >= config.events // 3:
            outage_at = now
            _faults(stack, config, identity_down=True)
        elif outage_at is not None and now - outage_at > config.identity_outage_seconds:
            _faults(stack, config, identity_down=False)
        if kills_left and now >= next_kill and stack.host.runtimes[WORKER].kill_busy():
            report.killed += 1
            kills_left -= 1
            next_kill = now + config.storm_seconds / (config.kills + 1)
        if now - last_sample >= config.sample_every:
            report.timeline.append((now - started, observer.converged()[0] / len(numbers)))
            last_sample = now
        time.sleep(0.05)
    for producer in producers:
        producer.join()
        report.sent_messages += producer.sent
        report.problems += [f"{producer.name}: {reason}" for reason in producer.refused[:5]]
    stack.sim.clear_faults()
    report.faults_stopped_at = time.monotonic() - started
    report.storm_seconds = report.faults_stopped_at


def _settle(stack: LocalStack, the_plan: Plan, config: ChaosConfig, report: ChaosReport) -> None:
    observer = Observer(stack, the_plan)
    started = time.monotonic()
    while True:
        good, problems = observer.converged()
        elapsed = time.monotonic() - started
        report.timeline.append((report.faults_stopped_at + elapsed, good / len(the_plan.events)))
        if good == len(the_plan.events) and queue_empty(stack):
            report.converged, report.settle_seconds = good, elapsed
            return
        if elapsed > config.settle_timeout:
            report.converged, report.settle_seconds = good, elapsed
            report.problems += problems
            return
        time.sleep(config.sample_every)

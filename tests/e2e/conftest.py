"""The e2e suite's stack: `sipreg devstack up` as a real subprocess (the console entry point),
one for the e2e package, with its clock 360 times faster (a registration's 3600 s TTL lasts 10 s).
It stops when the package's last test ends: left running, its schedules (the health check every
2 s, the refresher every 0.8 s) cost the rest of the suite minutes of CPU.

Tests read the JSON line it prints first (`devstack`), act through `devstack.scenario.Scenario`
(the demo's actions) and isolate themselves by MSISDN (`new_msisdn`).
"""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from devstack.child import ChildStartError, stop_child, wait_for_ready_line
from devstack.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]
SIPREG = Path(sys.executable).parent / "sipreg"  # the console script pyproject.toml installs
TIME_FACTOR = 360
READY_TIMEOUT_SECONDS = 60.0
CHROMIUM = "/usr/bin/chromium"
# As root, with no network beyond loopback: no sandbox, no background connections, no GPU.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's chromium, driven by Playwright (which never downloads a browser here)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@dataclass
class RunningDevstack:
    process: subprocess.Popen[str]
    info: dict[str, Any]
    later_lines: list[str]  # what it printed after the JSON line (the summary)
    stderr: IO[str]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """The exit code: 0 for a clean stop, -9 when it had to be killed."""
        return stop_child(self.process, timeout, signum)

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()


def start_devstack(log_dir: Path, *args: str) -> RunningDevstack:
    """`sipreg devstack up ARGS --log-dir LOG_DIR`, once its first (JSON) line is out."""
    stderr = (log_dir / "devstack-up.stderr").open("w+")
    process = subprocess.Popen(
        [str(SIPREG), "devstack", "up", "--log-dir", str(log_dir), *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    later: list[str] = []  # what it prints after the JSON line (the summary)
    try:
        info = wait_for_ready_line(process, READY_TIMEOUT_SECONDS, rest=later)
    except ChildStartError as error:
        stderr.seek(0)
        raise AssertionError(f"sipreg devstack up: {error}; stderr:\n{stderr.read()}") from None
    return RunningDevstack(process, info, later, stderr)


@pytest.fixture(scope="package")
def running_devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDevstack]:
    running = start_devstack(
        tmp_path_factory.mktemp("devstack"),
        "--time-factor",
        str(TIME_FACTOR),
        "--endpoint-down-action",
        "suspend",  # test_pbx_outage.py; every other test keeps the PBX up
    )
    yield running
    # SIGTERM stops it cleanly (the SIGINT path has a test of its own)
    assert running.stop(signal.SIGTERM) == 0, running.stderr_text()


@pytest.fixture(scope="package")
def devstack(running_devstack: RunningDevstack) -> dict[str, Any]:
    """The e2e stack's JSON line: api, aws_endpoint, core_grpc, wg2sim_http, webhook_secret, ..."""
    return running_devstack.info


@pytest.fixture(scope="package")
def pbx(devstack: dict[str, Any]) -> str:
    """The local PBX's URI. The stack suspends registrations whose endpoint does not answer
    (EndpointDownAction=suspend), so LOOP and FORK registrations point at an endpoint that does."""
    return str(devstack["pbx_uri"])


@pytest.fixture(scope="package")
def voicemail_box(devstack: dict[str, Any]) -> str:
    return str(devstack["voicemail_uri"])


@pytest.fixture(scope="package")
def scenario(devstack: dict[str, Any]) -> Iterator[Scenario]:
    acting = Scenario(devstack)
    yield acting
    acting.close()


@pytest.fixture
def core_faults(scenario: Scenario) -> Iterator[Scenario]:
    """The session stack, with no core faults left after the test."""
    yield scenario
    scenario.clear_core_faults()


_numbers = itertools.count(random.randrange(10**7))


@pytest.fixture
def new_msisdn() -> Callable[[], str]:
    """A fresh E.164 number on every call, unique within the session."""
    return lambda: f"+4798{next(_numbers) % 10**8:08d}"

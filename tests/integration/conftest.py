"""Shared wg2sim fixtures: real emulator processes on loopback, one per flavour per session.

Processes are shared, so tests isolate by MSISDN (`new_msisdn`) and clean up faults
(`wg2sim_faults`). A fault set without `msisdns` hits every call to that process.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

import grpc
import pytest

from devstack.pbx import LocalPbx, write_pbx_tls
from devstack.wg2sim.process import Wg2simProcess

# A registration's 3600 emulator seconds pass in one real second.
FAST_TIME_SCALE = 3600.0
# The call path's clock: the 30 s no-answer timeout lasts half a real second.
CALL_TIME_SCALE = 60.0


@pytest.fixture(scope="session")
def wg2sim() -> Iterator[Wg2simProcess]:
    """Plain gRPC, real-time clock."""
    with Wg2simProcess.start() as sim:
        yield sim


@pytest.fixture(scope="session")
def wg2sim_fast() -> Iterator[Wg2simProcess]:
    """Clock FAST_TIME_SCALE times faster: mint tokens with a long ttl (emulator seconds) here."""
    with Wg2simProcess.start(time_scale=FAST_TIME_SCALE) as sim:
        yield sim


@pytest.fixture(scope="session")
def wg2sim_tls() -> Iterator[Wg2simProcess]:
    """gRPC over TLS with the emulator's self-signed certificate (`ca_file`)."""
    with Wg2simProcess.start(tls=True) as sim:
        yield sim


@pytest.fixture
def wg2sim_faults(wg2sim: Wg2simProcess) -> Iterator[Wg2simProcess]:
    """The plain emulator, with no faults before the test and none left after it."""
    wg2sim.clear_faults()
    yield wg2sim
    wg2sim.clear_faults()


@pytest.fixture(scope="session")
def wg2_channel() -> Iterator[Callable[[Wg2simProcess], grpc.Channel]]:
    """One reused channel per emulator: plaintext, or TLS trusting its `ca_file`."""
    channels: dict[str, grpc.Channel] = {}

    def channel_to(sim: Wg2simProcess) -> grpc.Channel:
        if sim.grpc_target not in channels:
            if sim.ca_file:
                with open(sim.ca_file, "rb") as pem:
                    credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
                channels[sim.grpc_target] = grpc.secure_channel(sim.grpc_target, credentials)
            else:
                channels[sim.grpc_target] = grpc.insecure_channel(sim.grpc_target)
        return channels[sim.grpc_target]

    yield channel_to
    for channel in channels.values():
        channel.close()


_msisdn_numbers = itertools.count(random.randrange(10**8))


@pytest.fixture
def new_msisdn() -> Callable[[], str]:
    """A fresh Norwegian-looking E.164 number on every call, unique within the session."""
    return lambda: f"+479{next(_msisdn_numbers) % 10**9:09d}"


@pytest.fixture(scope="session")
def core_and_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Wg2simProcess, LocalPbx]]:
    """wg2sim (TLS, clock CALL_TIME_SCALE times faster: the 30 s no-answer timeout lasts 0.5 s)
    trusting the local PBX's certificate, and the PBX (Kamailio) trusting wg2sim's SIP port."""
    workdir = tmp_path_factory.mktemp("call-path")
    tls = write_pbx_tls(workdir / "pbx")
    with (
        Wg2simProcess.start(
            time_scale=CALL_TIME_SCALE,
            tls=True,
            extra_args=["--sip-ca-file", str(tls.cert_file), "--log-level", "INFO"],
            log_file=workdir / "wg2sim.log",
        ) as sim,
        LocalPbx.start(
            workdir / "pbx", tls=tls, core_ca_file=sim.sip_ca_file, log_file=workdir / "pbx.log"
        ) as pbx,
    ):
        yield sim, pbx

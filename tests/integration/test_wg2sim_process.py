"""`python -m devstack.wg2sim` as a process: announces itself with one JSON line, explains
every flag, fails loudly on bad flags or busy ports, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from devstack.wg2sim.__main__ import build_parser
from devstack.wg2sim.process import Wg2simProcess, Wg2simStartError
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2 as v1
from sipreg.proto.wgtwo.sipbreakout.v1 import sipbreakout_pb2_grpc as v1_grpc

FLAGS = [
    "--grpc-port",
    "--http-port",
    "--time-scale",
    "--tls",
    "--token-ttl",
    "--unavailable-rate",
    "--stall-rate",
    "--latency-ms",
    "--fault-msisdn",
]


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_help_explains_every_flag() -> None:
    # Given every flag of the contract, and every flag the parser knows
    options = {
        option: action.help
        for action in build_parser()._actions  # argparse keeps them there
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert set(FLAGS) <= options.keys()
    # When the help is asked for
    result = subprocess.run(
        [sys.executable, "-m", "devstack.wg2sim", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    # Then each flag is listed with an explanation, and the admin API is described
    for option, explanation in options.items():
        assert explanation and len(explanation) > 20, option
        assert option in result.stdout
    assert "/_admin/faults" in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_it_cleanly(signum: signal.Signals) -> None:
    # Given a running TLS emulator
    sim = Wg2simProcess.start(tls=True)
    assert sim.ca_file is not None and Path(sim.ca_file).exists()
    # When it gets the signal
    sim.process.send_signal(signum)
    code = sim.process.wait(10)
    sim.stop()
    # Then it exits 0, its ports are closed and its certificate is gone
    assert code == 0
    assert not port_is_open(sim.grpc_port)
    assert not port_is_open(sim.http_port)
    assert not Path(sim.ca_file).exists()


def test_sigterm_during_a_stalled_call_still_stops_promptly(new_msisdn: Callable[[], str]) -> None:
    # Given a call stalled without any deadline
    with Wg2simProcess.start(extra_args=["--stall-rate", "1"]) as sim:
        channel = grpc.insecure_channel(sim.grpc_target)
        stub = v1_grpc.SipBreakoutServiceStub(channel)
        token = sim.mint_token(msisdn=new_msisdn())
        request = v1.UpsertRegistrationRequest(registration=v1.Registration(sip_uri="sips:pbx.acme.example"))
        with ThreadPoolExecutor(max_workers=1) as pool:
            stalled = pool.submit(
                stub.UpsertRegistration, request, metadata=[("authorization", f"Bearer {token}")]
            )
            time.sleep(0.2)
            # When SIGTERM comes
            started = time.monotonic()
            code = sim.stop()
            took = time.monotonic() - started
            # Then the stalled call is ended, and the emulator exits 0 within its grace period
            with pytest.raises(grpc.RpcError):
                stalled.result(timeout=5)
        channel.close()
    assert code == 0
    assert took < 5


def test_a_bad_flag_fails_start_with_the_childs_stderr() -> None:
    with pytest.raises(Wg2simStartError) as raised:
        Wg2simProcess.start(extra_args=["--latency-ms", "80-20"])
    assert "--latency-ms" in str(raised.value)
    assert "exit code 2" in str(raised.value)


def test_no_ready_line_in_time_fails_start() -> None:
    # A Python start-up alone takes longer than 10 ms, so the ready line cannot come in time
    with pytest.raises(Wg2simStartError, match=r"no ready line within 0\.01 s"):
        Wg2simProcess.start(startup_timeout=0.01)


def test_a_busy_port_fails_start_loudly(wg2sim: Wg2simProcess) -> None:
    for flag, port in (("--grpc-port", wg2sim.grpc_port), ("--http-port", wg2sim.http_port)):
        args = [sys.executable, "-m", "devstack.wg2sim", flag, str(port)]
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 1, flag
        assert result.stdout == ""
        assert "cannot listen" in result.stderr

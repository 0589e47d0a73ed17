"""`sipreg devstack up` itself: what its first line promises, the configuration its options
choose (here API v1 with one client-credentials token), its log folder, and a clean stop on
Ctrl-C that leaves nothing listening."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devstack.scenario import Scenario, upsert
from tests.e2e.conftest import SIPREG, start_devstack


def listening(address: str) -> bool:
    parts = urlsplit(address if "//" in address else f"//{address}")
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((parts.hostname or "", parts.port or 0)) == 0


def test_first_line_names_every_door_of_the_running_stack(devstack: dict[str, Any]) -> None:
    # Given the session's stack (started with the defaults but a faster clock)
    # Then its JSON line names what the README promises, all on loopback and listening
    for key in ("api", "aws_endpoint", "wg2sim_http"):
        assert devstack[key].startswith("http://127.0.0.1:")
        assert listening(devstack[key])
    assert devstack["core_grpc"].startswith("127.0.0.1:") and listening(devstack["core_grpc"])
    # And the local PBX's two endpoints (Kamailio, SIP over TLS) and the core's SIP port
    for key in ("pbx_uri", "voicemail_uri", "core_sip"):
        assert devstack[key].startswith("sips:127.0.0.1:")
        assert listening(devstack[key].removeprefix("sips:")), key
    assert Path(devstack["pbx_ca_file"]).exists()
    assert devstack["webhook_secret"]
    assert (devstack["api_version"], devstack["auth_mode"], devstack["time_factor"]) == ("v0", "user", 360)
    # And its log folder has the stack's, the local AWS's, wg2sim's and each function's log
    logs = {path.name for path in Path(devstack["log_dir"]).iterdir()}
    assert {"stack.log", "aws.log", "wg2sim.log", "pbx.log"} <= logs
    assert {f"{function}.log" for function in devstack["functions"]} <= logs


def test_v1_client_mode_applies_a_v1_route_without_consent_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    # Given a stack for API v1 with one client-credentials token (no subscriber consent)
    running = start_devstack(tmp_path, "--api-version", "v1", "--auth-mode", "client", "--time-factor", "60")
    try:
        info = running.info
        assert (info["api_version"], info["auth_mode"]) == ("v1", "client")
        scenario = Scenario(info)
        # When the CRM asks for a v1-only route type, to the stack's PBX, for a number nobody consented for
        accepted = scenario.send(
            [upsert("v1-client-1", "+4797000001", "loop_mo", info["pbx_uri"], source="crm")]
        ).accepted
        assert accepted == ["v1-client-1"]
        # Then the core holds it, upserted through v1
        held = scenario.wait_for("the v1 registration", scenario.core, 15)
        assert [(r["msisdn"], r["route_type"], r["api_version"]) for r in held] == [
            ("+4797000001", "ROUTE_TYPE_LOOP_MO", "v1")
        ]
        # And the subscriber's own calls now loop through the PBX (leg 2, back as leg 3), calls to it do not
        outgoing = scenario.call("+4797000001", "+4797000002", "answer")
        assert [(leg["leg"], leg["sip_status"]) for leg in outgoing["legs"]] == [(2, 200), (3, 200), (4, 200)]
        assert outgoing["legs"][0]["to"] == info["pbx_uri"]
        incoming = scenario.call("+4797000002", "+4797000001", "answer")
        assert [leg["leg"] for leg in incoming["legs"]] == [4]
        scenario.close()
    finally:
        # When Ctrl-C is pressed
        code = running.stop(signal.SIGINT)
    # Then it stopped cleanly, and nothing it started still listens
    assert code == 0, running.stderr_text()
    assert "Traceback" not in running.stderr_text()
    for address in (info["api"], info["aws_endpoint"], info["wg2sim_http"], info["core_grpc"]):
        assert not listening(address), address
    for uri in (info["pbx_uri"], info["voicemail_uri"], info["core_sip"]):
        assert not listening(uri.removeprefix("sips:")), uri
    # And its readable summary followed the JSON line
    assert any("sipreg local stack is up" in line for line in running.later_lines)


def test_a_bad_option_is_refused_naming_it() -> None:
    # When an API version that does not exist is asked for
    done = subprocess.run(
        [str(SIPREG), "devstack", "up", "--api-version", "v2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # Then nothing starts and the option is named
    assert done.returncode == 2
    assert "--api-version" in done.stderr and "v2" in done.stderr
    assert done.stdout == ""

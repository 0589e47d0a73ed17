"""sipreg.sip.probe against real SIP servers over TLS: the local PBX (Kamailio) while it runs and
after it stopped, a server whose certificate is not trusted, one that never answers, and many
endpoints at once with bounded concurrency. And the local PBX itself outlives thousands of TLS
connections (Debian's Kamailio 5.6.3 on OpenSSL 3 died within a few hundred with 4 TCP workers)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.pbx import LocalPbx
from devstack.wg2sim.process import Wg2simProcess
from devstack.wg2sim.tls import write_self_signed
from sipreg.sip import probe, probe_all


@pytest.fixture
def own_pbx(tmp_path: Path) -> Iterator[LocalPbx]:
    """A Kamailio of this test's own (the test may stop it)."""
    pbx = LocalPbx.start(tmp_path / "pbx")
    yield pbx
    pbx.stop()


def test_a_running_pbx_is_up_with_200(own_pbx: LocalPbx) -> None:
    result = probe(own_pbx.pbx_uri, timeout=2, ca_file=own_pbx.ca_file)
    assert (result.up, result.status_code, result.reason) == (True, 200, "200 OK")
    assert result.uri == own_pbx.pbx_uri and 0 < result.elapsed_seconds < 2.5


def test_the_pbx_outlives_thousands_of_tls_connections_from_concurrent_probes(own_pbx: LocalPbx) -> None:
    # Kamailio 5.6.3's TLS module corrupts its shared memory on OpenSSL 3 when several processes
    # serve TLS (a double free, then SIGSEGV or SIGABRT): measured here after 70 to 315 probes
    # with 4 TCP workers, never in 15,000 with one.
    trust = ssl.create_default_context(cafile=own_pbx.ca_file)
    uris = [own_pbx.pbx_uri, own_pbx.voicemail_uri] * 1000
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda uri: probe(uri, timeout=5, ssl_context=trust), uris))
    assert own_pbx.process.poll() is None, "Kamailio died under the probes"
    assert [r.reason for r in results if not r.up] == []


def test_a_stopped_pbx_is_down_with_the_reason(own_pbx: LocalPbx) -> None:
    # Given a PBX that was up
    assert probe(own_pbx.voicemail_uri, timeout=2, ca_file=own_pbx.ca_file).up
    # When it stops
    assert own_pbx.stop() == 0
    # Then a probe is down at once, saying the connection was refused
    result = probe(own_pbx.voicemail_uri, timeout=2, ca_file=own_pbx.ca_file)
    assert (result.up, result.status_code) == (False, None)
    assert result.reason == "connect: connection refused"
    assert result.elapsed_seconds < 3  # refused at once (slack for a loaded machine)


def test_an_endpoint_whose_certificate_is_not_trusted_is_down(own_pbx: LocalPbx) -> None:
    # The system's roots do not vouch for the PBX's self-signed certificate
    result = probe(own_pbx.pbx_uri, timeout=2)
    assert not result.up and result.status_code is None
    assert result.reason.startswith("tls: certificate not trusted")


def test_the_pbx_serves_on_127_0_0_1_only(own_pbx: LocalPbx) -> None:
    # Another loopback address reaches no listener: Kamailio binds 127.0.0.1, nothing wider
    result = probe(f"sips:127.0.0.2:{own_pbx.pbx_port}", timeout=1, ca_file=own_pbx.ca_file)
    assert (result.up, result.reason) == (False, "connect: connection refused")


@pytest.fixture
def silent_tls_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A TLS server that completes handshakes and then never says a word: (uri, its certificate)."""
    tls = write_self_signed(tmp_path, file_name="silent.pem")
    key = tmp_path / "silent-key.pem"
    key.write_bytes(tls.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, key)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stopping = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stopping.is_set():
            try:
                raw, _ = server.accept()
            except TimeoutError:
                continue
            try:
                held.append(context.wrap_socket(raw, server_side=True))
            except (ssl.SSLError, OSError):
                raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"sips:127.0.0.1:{server.getsockname()[1]}", str(tls.cert_file)
    stopping.set()
    thread.join(2)
    for sock in held:
        sock.close()
    server.close()


def test_an_endpoint_that_never_answers_is_down_after_the_timeout(silent_tls_server: tuple[str, str]) -> None:
    uri, ca_file = silent_tls_server
    started = time.monotonic()
    result = probe(uri, timeout=0.5, ca_file=ca_file)
    assert not result.up and result.status_code is None
    assert result.reason == "timeout: no final response within 0.5 s"
    assert 0.45 <= time.monotonic() - started < 3


def test_the_cores_own_sip_port_answers_options_too(wg2sim: Wg2simProcess) -> None:
    assert wg2sim.sip_ca_file is not None
    result = probe(wg2sim.sip_uri, timeout=2, ca_file=wg2sim.sip_ca_file)
    assert (result.up, result.status_code) == (True, 200)


def test_probe_all_checks_each_distinct_endpoint_once_within_its_bounds(
    own_pbx: LocalPbx, silent_tls_server: tuple[str, str], tmp_path: Path
) -> None:
    # Given the PBX's two endpoints (twice over), a silent one, and a port where nothing listens
    silent, silent_ca = silent_tls_server
    bundle = tmp_path / "trusted.pem"
    bundle.write_text(Path(own_pbx.ca_file).read_text() + Path(silent_ca).read_text())
    closed = "sips:127.0.0.1:9"
    uris = [own_pbx.pbx_uri, own_pbx.voicemail_uri, own_pbx.pbx_uri, silent, closed]
    # When they are probed two at a time
    started = time.monotonic()
    results = probe_all(uris, timeout=0.5, concurrency=2, ca_file=str(bundle))
    # Then each distinct one has its own answer, and the silent one did not hold the rest up for long
    assert list(results) == [own_pbx.pbx_uri, own_pbx.voicemail_uri, silent, closed]
    assert {uri: r.up for uri, r in results.items()} == {
        own_pbx.pbx_uri: True,
        own_pbx.voicemail_uri: True,
        silent: False,
        closed: False,
    }
    assert results[silent].reason.startswith("timeout")
    assert results[closed].reason == "connect: connection refused"
    assert time.monotonic() - started < 3

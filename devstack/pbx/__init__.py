"""The local PBX/TAS: Kamailio (Debian's `kamailio` + `kamailio-tls-modules`) serving SIP over TLS
on 127.0.0.1 only, as two endpoints of one provider: the PBX and its voicemail.

    tls = write_pbx_tls(directory)                      # its certificate (localhost, 127.0.0.1)
    with LocalPbx.start(directory, tls=tls, core_ca_file=sim.ca_file) as pbx:
        pbx.pbx_uri, pbx.voicemail_uri                  # "sips:127.0.0.1:NNNNN", each a TLS listener
        ...                                             # trust tls.cert_file to reach them

What it does with a request is in `kamailio.cfg` beside this file (docs/call-routing.md explains
why): OPTIONS 200; an INVITE whose Route set leads on to the core (Loop) is record-routed and
relayed there, so the core's leg 2 comes back as leg 3; any other INVITE is answered here
(180, then 200 with an SDP answer); BYE 200. `core_ca_file` is what it trusts when it connects
to the core (leg 3); without it, that connection is refused.

Why Kamailio and not sipp: Debian's sipp 3.6.1 is built without TLS (`sipp -h` offers no `-t l1`
transport), and the core reaches a TAS over TLS only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Self

from devstack.child import Stoppable, stop_child
from devstack.wg2sim.tls import TlsFiles, write_self_signed
from sipreg.sip import probe

KAMAILIO = "kamailio"
CONFIG_TEMPLATE = Path(__file__).with_name("kamailio.cfg")
STARTUP_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
LOOPBACK = "127.0.0.1"


class PbxStartError(RuntimeError):
    """Kamailio did not come up; the message carries the end of its log."""


def write_pbx_tls(directory: Path) -> TlsFiles:
    """The PBX's certificate (for 127.0.0.1 and localhost) and its key, both as files in `directory`.

    Self-signed: the certificate is its own root, so whoever calls the PBX (wg2sim, the health
    probes) trusts exactly `cert_file`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tls = write_self_signed(directory, file_name="pbx-cert.pem", common_name="sipreg local pbx")
    key_file = directory / "pbx-key.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(tls.key_pem)
    return tls


def kamailio_path() -> str:
    found = shutil.which(KAMAILIO) or next(
        (p for p in ("/usr/sbin/kamailio", "/sbin/kamailio") if Path(p).exists()), None
    )
    if found is None:
        raise PbxStartError(
            "kamailio is not installed: `make sip` installs Debian's kamailio and kamailio-tls-modules"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind((LOOPBACK, 0))
        return int(probe_socket.getsockname()[1])


class LocalPbx(Stoppable):
    """A running Kamailio; build it with `start()`, stop it with `stop()` (or a `with` block)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        log: IO[bytes],
        workdir: Path,
        ports: tuple[int, int],
        tls: TlsFiles,
    ) -> None:
        self.process = process
        self.workdir = workdir
        self.pbx_port, self.voicemail_port = ports
        self.tls = tls
        self._log = log

    @property
    def pbx_uri(self) -> str:
        return f"sips:{LOOPBACK}:{self.pbx_port}"

    @property
    def voicemail_uri(self) -> str:
        return f"sips:{LOOPBACK}:{self.voicemail_port}"

    @property
    def ca_file(self) -> str:
        """The certificate to trust to reach either endpoint."""
        return str(self.tls.cert_file)

    @classmethod
    def start(
        cls,
        workdir: Path | None = None,
        *,
        tls: TlsFiles | None = None,
        core_ca_file: str | None = None,
        log_file: Path | None = None,
        ports: tuple[int, int] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> Self:
        """Writes its config into `workdir` (default: a new temporary directory), starts Kamailio in
        the foreground and waits until both endpoints answer OPTIONS over TLS. Free ports are
        picked unless `ports` (pbx, voicemail) are given; a port taken in between is retried."""
        binary = kamailio_path()
        workdir = workdir or Path(tempfile.mkdtemp(prefix="sipreg-pbx-"))
        workdir.mkdir(parents=True, exist_ok=True)
        tls = tls or write_pbx_tls(workdir)
        attempts = 1 if ports else 3
        error: PbxStartError | None = None
        for _ in range(attempts):
            chosen = ports or (free_port(), free_port())
            try:
                return cls._start_once(
                    binary,
                    workdir,
                    tls,
                    core_ca_file=core_ca_file,
                    log_file=log_file,
                    ports=chosen,
                    startup_timeout=startup_timeout,
                )
            except PbxStartError as failed:
                error = failed
        assert error is not None
        raise error

    @classmethod
    def _start_once(
        cls,
        binary: str,
        workdir: Path,
        tls: TlsFiles,
        *,
        core_ca_file: str | None,
        log_file: Path | None,
        ports: tuple[int, int],
        startup_timeout: float,
    ) -> Self:
        config = write_config(workdir, tls, core_ca_file, ports)
        rundir = workdir / "run"
        rundir.mkdir(exist_ok=True)
        log = log_file.open("a+b") if log_file else (workdir / "kamailio.log").open("a+b")
        log_start = log.tell()
        # -DD: stay in the foreground (children forked); -E: log to stderr; small memory pools.
        args = [binary, "-f", str(config), "-DD", "-E", "-Y", str(rundir), "-m", "32", "-M", "8"]
        # A process group of its own (its pid): an outage can be played by stopping the whole group.
        process = subprocess.Popen(  # noqa: S603
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        pbx = cls(process, log, workdir, ports, tls)
        deadline = time.monotonic() + startup_timeout
        waiting = [pbx.pbx_uri, pbx.voicemail_uri]
        while waiting:
            if process.poll() is not None or time.monotonic() > deadline:
                reason = (
                    f"exited with {process.returncode}"
                    if process.returncode is not None
                    else f"not answering OPTIONS within {startup_timeout:g} s"
                )
                pbx.stop(timeout=0)
                raise PbxStartError(
                    f"kamailio {reason}; its log:\n{_tail(log_file or workdir / 'kamailio.log', log_start)}"
                )
            if probe(waiting[0], timeout=1.0, ca_file=pbx.ca_file).up:
                waiting.pop(0)
            else:
                time.sleep(0.05)
        return pbx

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM (Kamailio stops its children), then SIGKILL if needed; the exit code. The
        group is continued first (a test may have stopped it) and killed last (no child left)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGCONT)
        code = stop_child(self.process, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()
        return code


def write_config(workdir: Path, tls: TlsFiles, core_ca_file: str | None, ports: tuple[int, int]) -> Path:
    """kamailio.cfg and its tls.cfg in `workdir`, for these ports and certificates."""
    key_file = tls.cert_file.with_name("pbx-key.pem")
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_bytes(tls.key_pem)
    tls_cfg = workdir / "tls.cfg"
    # TLS 1.2 on the server side: with TLS 1.3, Kamailio 5.6.3 lost about one INVITE in 60 sent
    # right after the handshake (measured here: the request never reached its script); 0 in 150
    # with TLS 1.2.
    client = (
        f"verify_certificate = yes\nrequire_certificate = yes\nca_list = {core_ca_file}\n"
        if core_ca_file
        # Nothing to trust: refuse every server (leg 3 to the core fails, as it should).
        else "verify_certificate = yes\nrequire_certificate = yes\n"
    )
    tls_cfg.write_text(
        "[server:default]\nmethod = TLSv1.2\nverify_certificate = no\nrequire_certificate = no\n"
        f"private_key = {key_file}\ncertificate = {tls.cert_file}\n\n"
        f"[client:default]\nmethod = TLSv1.2+\n{client}"
    )
    config = workdir / "kamailio.cfg"
    text = CONFIG_TEMPLATE.read_text()
    for name, value in {
        "PBX_PORT": str(ports[0]),
        "VOICEMAIL_PORT": str(ports[1]),
        "TLS_CFG": str(tls_cfg),
    }.items():
        text = text.replace(f"@@{name}@@", value)
    config.write_text(text)
    return config


def _tail(path: Path, start: int, limit: int = 3000) -> str:
    try:
        with path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")[-limit:]
    except OSError:
        return "(no log)"

"""SIP over TLS: one connection with its reader thread, and the TLS contexts of both ends."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable

from devstack.wg2sim.sip.message import Hop, Message, SipError, StreamParser

log = logging.getLogger(__name__)


class Connection:
    """One TLS connection; `on_message(message, connection)` runs on its reader thread."""

    def __init__(
        self, sock: ssl.SSLSocket, on_message: Callable[[Message, Connection], None], name: str
    ) -> None:
        self.sock = sock
        self.local = Hop(*sock.getsockname()[:2])
        self.peer = Hop(*sock.getpeername()[:2])
        self._on_message = on_message
        self._send_lock = threading.Lock()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        hop: Hop,
        context: ssl.SSLContext,
        on_message: Callable[[Message, Connection], None],
        timeout: float,
    ) -> Connection:
        """Connects and completes the TLS handshake (the certificate must fit `hop.host`)."""
        try:
            raw = socket.create_connection((hop.host, hop.port), timeout=timeout)
        except socket.gaierror as error:
            raise SipError(f"cannot resolve {hop.host}: {error.strerror or error}") from None
        except TimeoutError:
            raise SipError(f"no TCP connection to {hop} within {timeout:g} s") from None
        except ConnectionRefusedError:
            raise SipError(f"connection refused by {hop}") from None
        except OSError as error:
            raise SipError(f"cannot connect to {hop}: {error.strerror or error}") from None
        try:
            sock = context.wrap_socket(raw, server_hostname=hop.host)
        except ssl.SSLCertVerificationError as error:
            raw.close()
            raise SipError(f"TLS to {hop}: certificate not trusted ({error.verify_message})") from None
        except (ssl.SSLError, OSError) as error:
            raw.close()
            raise SipError(f"TLS to {hop} failed: {error}") from None
        sock.settimeout(None)
        return cls(sock, on_message, f"sip-client-{hop}")

    def send(self, message: Message) -> None:
        data = message.encode()
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError as error:
                raise SipError(f"send to {self.peer}: {error}") from None
        log.debug("sent to %s: %s", self.peer, message.first_line)

    def close(self) -> None:
        """Ends the connection. Only the reader thread closes the socket: closing it here while
        the reader is inside recv() would free the file descriptor under it, and the next socket
        the process opens (an HTTP client's, say) would get that number and lose bytes to it."""
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # the reader's recv() returns: it closes
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _read(self) -> None:
        parser = StreamParser()
        try:
            while True:
                data = self.sock.recv(16384)
                if not data:
                    break
                for message in parser.feed(data):
                    log.debug("from %s: %s", self.peer, message.first_line)
                    try:
                        self._on_message(message, self)
                    except Exception:
                        log.exception("handling %s from %s", message.first_line, self.peer)
        except (OSError, SipError, ValueError) as error:
            if not self.closed.is_set():
                log.debug("connection to %s ends: %s", self.peer, error)
        finally:
            self.closed.set()
            with contextlib.suppress(OSError):
                self.sock.close()


def client_context(ca_files: tuple[str, ...] = ()) -> ssl.SSLContext:
    """What the core trusts when it calls a TAS: the system's roots plus `ca_files`."""
    context = ssl.create_default_context()
    for ca_file in ca_files:
        context.load_verify_locations(cafile=ca_file)
    return context


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context

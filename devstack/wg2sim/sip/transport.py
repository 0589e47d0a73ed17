"""SIP over TLS: one connection with its reader thread, and the TLS contexts of both ends."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
from collections.abc import Callable

from devstack.wg2sim.sip.message import Hop, Message, SipError, StreamParser

log = logging.getLogger(__name__)


class Connection:
    """One TLS connection; `on_message(message, connection)` runs on its reader thread.

    OpenSSL forbids using one SSL object from two threads at once, and a blocking reader sits in
    SSL_read while another thread answers: on fresh TLS 1.3 connections (the session tickets
    arrive just after the handshake) that lost about 1 message exchange in 20 and raised
    "[SSL] internal error". So after the handshake the socket is non-blocking, every call into
    TLS holds `_tls`, and a thread that must wait for the socket waits outside it.
    """

    POLL_SECONDS = 0.5  # how often a waiting thread looks at `closed`

    def __init__(
        self, sock: ssl.SSLSocket, on_message: Callable[[Message, Connection], None], name: str
    ) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.local = Hop(*sock.getsockname()[:2])
        self.peer = Hop(*sock.getpeername()[:2])
        self._on_message = on_message
        self._tls = threading.Lock()  # held for each call into the SSL object
        self._send_lock = threading.Lock()  # one message's bytes at a time, in order
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
        return cls(sock, on_message, f"sip-client-{hop}")

    def send(self, message: Message) -> None:
        data = memoryview(message.encode())
        with self._send_lock:
            while data:
                if self.closed.is_set():
                    raise SipError(f"send to {self.peer}: the connection is closed")
                try:
                    with self._tls:
                        # After "want write" OpenSSL needs the same bytes again: `data` moves on
                        # only by what was sent.
                        data = data[self.sock.send(data) :]
                except ssl.SSLWantWriteError:
                    self._wait(for_writing=True)
                except ssl.SSLWantReadError:
                    self._wait(for_writing=False)
                except (OSError, ValueError) as error:
                    raise SipError(f"send to {self.peer}: {error}") from None
        log.debug("sent to %s: %s", self.peer, message.first_line)

    def close(self) -> None:
        """Ends the connection. Only the reader thread closes the socket: closing it here while
        the reader waits on it would free the file descriptor under it, and the next socket
        the process opens (an HTTP client's, say) would get that number and lose bytes to it."""
        if not self.closed.is_set():
            self.closed.set()
            with self._tls, contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # the reader wakes, sees `closed`, closes
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _wait(self, *, for_writing: bool) -> None:
        sockets = [self.sock]
        select.select([] if for_writing else sockets, sockets if for_writing else [], [], self.POLL_SECONDS)

    def _read(self) -> None:
        parser = StreamParser()
        try:
            while not self.closed.is_set():
                try:
                    with self._tls:
                        data = self.sock.recv(16384)
                except ssl.SSLWantReadError:
                    # TLS has nothing buffered: wait for the network, without holding `_tls`
                    self._wait(for_writing=False)
                    continue
                except ssl.SSLWantWriteError:
                    self._wait(for_writing=True)
                    continue
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

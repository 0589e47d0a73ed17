"""wg2sim's SIP over TLS on real loopback sockets: a connection is read on one thread and written
on others (a response from the thread that handles the call), which OpenSSL does not allow on
one SSL object at the same time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.wg2sim.sip.message import Message, SipError
from devstack.wg2sim.sip.transport import client_context, server_context
from devstack.wg2sim.sip.uac import ClientInvite
from devstack.wg2sim.sip.uas import ServerInvite, SipListener
from devstack.wg2sim.tls import TlsFiles, write_self_signed

# Before the TLS calls were serialised, about 1 fresh connection in 25 lost its final response
# (or failed with "[SSL] internal error"): 60 calls then fail with a probability of about 0.9.
CALLS = 60


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_self_signed(tmp_path_factory.mktemp("sip-tls"))


@pytest.fixture
def listener(tls: TlsFiles, tmp_path: Path) -> Iterator[SipListener]:
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(tls.key_pem)

    def refuse_from_the_call_thread(invite: ServerInvite) -> None:
        invite.respond(403)  # on the call's thread, while the reader thread waits for more

    sip = SipListener(server_context(str(tls.cert_file), str(key_file)), refuse_from_the_call_thread)
    sip.start()
    yield sip
    sip.stop()


def call(listener: SipListener, tls: TlsFiles, number: int) -> ClientInvite:
    invite = ClientInvite(
        request_uri=f"sips:+4790{number:06d}@127.0.0.1",
        from_uri="sips:pbx@127.0.0.1",
        to_uri=f"sips:+4790{number:06d}@127.0.0.1",
        contact="sips:pbx@127.0.0.1",
        context=client_context((str(tls.cert_file),)),
        routes=(f"<sips:127.0.0.1:{listener.port};lr>",),
    )
    invite.start()  # sends the INVITE at once, while its reader takes TLS 1.3's session tickets
    invite.wait_final(3)
    return invite


def test_every_fresh_connection_gets_its_answer_written_from_another_thread(
    listener: SipListener, tls: TlsFiles
) -> None:
    lost: list[tuple[int, str | None]] = []
    for number in range(CALLS):
        invite = call(listener, tls, number)
        if invite.status != 403:
            lost.append((number, invite.error))
        invite.close()
    assert lost == []


def test_a_closed_connection_refuses_to_send_and_its_reader_ends(
    listener: SipListener, tls: TlsFiles
) -> None:
    invite = call(listener, tls, 0)
    assert invite.status == 403 and invite._connection is not None
    connection = invite._connection
    connection.close()
    assert connection.closed.is_set() and connection.sock.fileno() == -1  # the reader closed it
    with pytest.raises(SipError, match="closed"):
        connection.send(Message("OPTIONS sips:127.0.0.1 SIP/2.0"))

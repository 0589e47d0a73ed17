"""A call's legs: the B-party's phone (leg 4, emulated), and what becomes of an INVITE to a TAS
(settled into its `Leg`, cancelled, ended by BYE)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from devstack.wg2sim.calls.model import Leg
from devstack.wg2sim.sip.uac import ClientInvite


class Phone:
    """The B-party's phone (leg 4), emulated: rings, then answers, is busy, or rings on."""

    def __init__(
        self, leg: Leg, behaviour: str, answer_after: float, t0: float, ringing: Callable[[], object]
    ) -> None:
        self.leg = leg
        self._ringing = ringing
        self.behaviour = behaviour
        self.answered = threading.Event()  # any final status
        self._cancel = threading.Event()
        self._t0 = t0
        self._answer_after = answer_after
        threading.Thread(target=self._run, name="wg2sim-phone", daemon=True).start()

    @property
    def status(self) -> int | None:
        return self.leg.sip_status

    def _final(self, status: int, reason: str) -> None:
        self.leg.sip_status, self.leg.reason = status, reason
        self.leg.answered_after = time.monotonic() - self._t0
        self.answered.set()

    def _run(self) -> None:
        if self.behaviour == "busy":
            self._final(486, "Busy Here")
            return
        self.leg.provisional.append(180)
        self._ringing()
        if self.behaviour == "answer" and not self._cancel.wait(self._answer_after):
            self._final(200, "OK")
            return
        self._cancel.wait()
        self.leg.cancelled = True
        self._final(487, "Request Terminated")

    def cancel(self) -> None:
        self._cancel.set()
        self.answered.wait(1)


def settle(leg: Leg, invite: ClientInvite, t0: float) -> None:
    """Copies what the INVITE got into its leg."""
    leg.provisional = list(invite.provisional)
    if invite.final is not None:
        leg.sip_status = invite.final.status
        leg.reason = invite.final.reason
        leg.server = invite.final.header("server")
    leg.error = invite.error or ""
    if leg.answered_after is None:
        leg.answered_after = time.monotonic() - t0


def cancel(leg: Leg, invite: ClientInvite, t0: float) -> None:
    """CANCEL a leg still ringing; one that answered meanwhile is ended by BYE."""
    if not invite.answered.is_set():
        if not invite.responded.wait(1.0):
            invite.give_up("no response from the TAS")
        leg.cancelled = True
        invite.cancel()
    settle(leg, invite, t0)
    if 200 <= (invite.status or 0) < 300:
        bye(leg, invite)  # it answered as we cancelled: end that call
    else:
        invite.close()


def hang_up_of(leg: Leg, invite: ClientInvite) -> Callable[[], None]:
    """What ends this answered leg, once the call is over."""
    return lambda: bye(leg, invite)


def bye(leg: Leg, invite: ClientInvite) -> None:
    leg.bye_status = invite.bye()
    invite.close()

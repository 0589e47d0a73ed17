"""The routing of a call by the registrations (docs/call-routing.md): Loop, Fork, Fallback and
Ingress, with the no-answer timeout; and what arrives at the core's own SIP port."""

from __future__ import annotations

import queue
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.wg2sim.calls.legs import Phone, bye, cancel, hang_up_of, settle
from devstack.wg2sim.calls.model import CALLEE_BEHAVIOURS, CallRequest, CallResult, Leg
from devstack.wg2sim.registrations import Registration, RegistrationStore
from devstack.wg2sim.sip.message import REASONS, uri_of
from devstack.wg2sim.sip.uac import ClientInvite
from devstack.wg2sim.sip.uas import ServerInvite, SipListener

NO_ANSWER_TIMEOUT_SECONDS = 30.0  # emulator seconds (WG2: "no answer detected within the timeout (30s)")
PHONE_ANSWER_MAX_REAL_SECONDS = 0.25  # a subscriber who answers does so within this, or half the window
TAS_INVITE_TIMEOUT_SECONDS = 8.0  # real seconds without a final answer from a TAS: leg failed (Timer B)
CORE_DOMAIN = "ims.wg2sim.invalid"
RECENT_CALLS = 50

LOOP_MO = {"ROUTE_TYPE_LOOP", "ROUTE_TYPE_LOOP_MO"}  # the caller's registrations that loop its calls
LOOP_MT = {"ROUTE_TYPE_LOOP", "ROUTE_TYPE_LOOP_MT"}  # the callee's that loop calls to it


@dataclass
class _Call:
    result: CallResult
    request: CallRequest
    forks: list[Registration]
    fallbacks: list[Registration]
    t0: float


@dataclass
class _Outcome:
    status: int
    answered_by: str | None = None
    hang_ups: list[Callable[[], None]] = field(default_factory=list)


class CallRouter:
    """Places calls on the emulated core; thread-safe (each call runs on its caller's thread)."""

    def __init__(
        self,
        registrations: RegistrationStore,
        time_scale: float,
        listener: SipListener,
        context: ssl.SSLContext,
    ) -> None:
        self._registrations = registrations
        self._time_scale = time_scale
        self._listener = listener
        self._context = context
        self._lock = threading.Lock()
        self._loops: dict[str, queue.Queue[ServerInvite]] = {}
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_CALLS)

    @property
    def no_answer_seconds(self) -> float:
        """The no-answer timeout in real seconds."""
        return NO_ANSWER_TIMEOUT_SECONDS / self._time_scale

    @property
    def phone_answer_seconds(self) -> float:
        return min(PHONE_ANSWER_MAX_REAL_SECONDS, self.no_answer_seconds / 2)

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._recent)

    # --- a call from the admin API -----------------------------------------------------------------

    def place(self, request: CallRequest) -> CallResult:
        """Routes the call, waits for its outcome, then hangs up (BYE on every answered SIP leg)."""
        result = CallResult(request.caller, request.callee, request.behaviour, started_at=time.time())
        t0 = time.monotonic()
        held = self._registrations.list()
        mine = [r for r in held if r.msisdn == request.caller and r.route_type in LOOP_MO]
        theirs = [r for r in held if r.msisdn == request.callee]
        loops = [("mo", r) for r in mine] + [("mt", r) for r in theirs if r.route_type in LOOP_MT]
        forks = [r for r in theirs if r.route_type == "ROUTE_TYPE_FORK"]
        fallbacks = [r for r in theirs if r.route_type == "ROUTE_TYPE_FALLBACK"]
        result.routing = [_routing(r) for r in [r for _, r in loops] + forks + fallbacks]
        call = _Call(result, request, forks, fallbacks, t0)
        outcome = self._through_loops(call, loops, lambda: None)
        result.sip_status = outcome.status
        result.answered_by = outcome.answered_by
        for hang_up in outcome.hang_ups:
            hang_up()
        self._remember(result)
        return result

    def _remember(self, result: CallResult) -> None:
        with self._lock:
            self._recent.append(result.to_json())

    def _through_loops(
        self, call: _Call, loops: list[tuple[str, Registration]], ringing: Callable[[], object]
    ) -> _Outcome:
        """Loop: leg 2 to the TAS with the way back in its Route set; the call goes on only when
        the TAS sends it back as leg 3 (then the next loop, or the callee's own routing)."""
        result, request, t0 = call.result, call.request, call.t0
        if not loops:
            return self._to_callee(
                result=result,
                request=request,
                forks=call.forks,
                fallbacks=call.fallbacks,
                t0=t0,
                ringing=ringing,
            )
        side, registration = loops[0]
        odi = secrets.token_hex(8)
        arrivals: queue.Queue[ServerInvite] = queue.Queue()
        with self._lock:
            self._loops[odi] = arrivals
        prefix = (
            registration.mobile_originating_prefix if side == "mo" else registration.mobile_terminating_prefix
        )
        leg2, invite = self._tas_leg(
            result=result, request=request, registration=registration, t0=t0, prefix=prefix, route_back=odi
        )
        try:
            invite.start()
            deadline = time.monotonic() + TAS_INVITE_TIMEOUT_SECONDS
            back: ServerInvite | None = None
            while back is None and not invite.answered.is_set() and time.monotonic() < deadline:
                try:
                    back = arrivals.get(timeout=0.02)
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._loops.pop(odi, None)
        if back is None:
            # The TAS answered or refused leg 2 itself (it need not send it back), or failed.
            settle(leg2, invite, t0)
            if invite.error:
                return _Outcome(503)  # the call cannot go on without the TAS it must loop through
            status = invite.status or 500
            if 200 <= status < 300:
                return _Outcome(status, registration.sip_uri, [hang_up_of(leg2, invite)])
            return _Outcome(status)
        leg3 = Leg(
            leg=3,
            to=invite.request_uri,
            started=time.monotonic() - t0,
            request_uri=back.request.uri,
            source=f"sips:{back.connection.peer}",
            registration=registration.route_type.removeprefix("ROUTE_TYPE_"),
        )
        result.legs.append(leg3)
        inner = self._through_loops(call, loops[1:], lambda: bool(back.respond(180)))
        answered = 200 <= inner.status < 300
        if not back.respond(inner.status, sdp=answered):
            inner.status = back.final_status or 487
        leg3.sip_status = back.final_status
        leg3.reason = REASONS.get(back.final_status or 0, "")
        leg3.answered_after = time.monotonic() - t0
        if not invite.wait_final(TAS_INVITE_TIMEOUT_SECONDS):
            invite.give_up("no final response relayed by the TAS")
        settle(leg2, invite, t0)
        status = invite.status or 503

        def hang_up() -> None:
            bye(leg2, invite)
            if back.ended.wait(2):
                leg3.bye_status = 200
            self._listener.forget(back)
            for later in inner.hang_ups:
                later()

        if 200 <= status < 300:
            return _Outcome(status, inner.answered_by, [hang_up])
        self._listener.forget(back)
        return _Outcome(status, None, inner.hang_ups)

    def _to_callee(
        self,
        *,
        result: CallResult,
        request: CallRequest,
        forks: list[Registration],
        fallbacks: list[Registration],
        t0: float,
        ringing: Callable[[], object],
    ) -> _Outcome:
        """Fork: the TAS legs and the phone at once. Otherwise the phone, and Fallback's TAS only when
        it is busy or does not answer within the timeout."""
        phone_leg = Leg(leg=4, to=f"tel:{request.callee}", started=time.monotonic() - t0, registration="")
        result.legs.append(phone_leg)
        tas = [
            self._tas_leg(
                result=result, request=request, registration=r, t0=t0, prefix=r.mobile_terminating_prefix
            )
            for r in forks
        ]
        phone = Phone(phone_leg, request.behaviour, self.phone_answer_seconds, t0, ringing)
        for _, invite in tas:
            invite.start()
        winner = self._race(phone, tas, t0)
        if winner is not None:
            return winner
        busy_or_no_answer = phone.status or 480
        if busy_or_no_answer == 487:
            busy_or_no_answer = 480  # rang out: "Temporarily Unavailable" to the caller
        if not fallbacks:
            return _Outcome(busy_or_no_answer)
        backups = [
            self._tas_leg(
                result=result, request=request, registration=r, t0=t0, prefix=r.mobile_terminating_prefix
            )
            for r in fallbacks
        ]
        for _, invite in backups:
            invite.start()
        deadline = time.monotonic() + TAS_INVITE_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not all(invite.answered.is_set() for _, invite in backups):
            if any(200 <= (invite.status or 0) < 300 for _, invite in backups):
                break
            time.sleep(0.005)
        return self._pick(backups, t0) or _Outcome(busy_or_no_answer)

    def _race(self, phone: Phone, tas: list[tuple[Leg, ClientInvite]], t0: float) -> _Outcome | None:
        """The first 2xx wins and the other legs are cancelled; None when nobody answered."""
        ring_until = time.monotonic() + self.no_answer_seconds
        tas_until = time.monotonic() + TAS_INVITE_TIMEOUT_SECONDS
        while True:
            now = time.monotonic()
            if phone.status == 200:
                for leg, invite in tas:
                    cancel(leg, invite, t0)
                phone.leg.bye_status = 200
                return _Outcome(200, "phone")
            answered = next(((leg, invite) for leg, invite in tas if 200 <= (invite.status or 0) < 300), None)
            if answered is not None:
                if not phone.answered.is_set():
                    phone.cancel()
                for leg, invite in tas:
                    if invite is not answered[1]:
                        cancel(leg, invite, t0)
                settle(*answered, t0)
                winner_leg, winner = answered
                return _Outcome(winner.status or 200, winner_leg.to, [hang_up_of(winner_leg, winner)])
            if now >= ring_until and not phone.answered.is_set():
                phone.cancel()  # no answer within the timeout
            tas_done = all(invite.answered.is_set() for _, invite in tas) or now >= tas_until
            if phone.answered.is_set() and tas_done:
                for leg, invite in tas:
                    cancel(leg, invite, t0)
                return None
            time.sleep(0.002)

    def _pick(self, legs: list[tuple[Leg, ClientInvite]], t0: float) -> _Outcome | None:
        answered = next(((leg, invite) for leg, invite in legs if 200 <= (invite.status or 0) < 300), None)
        for leg, invite in legs:
            if answered is None or invite is not answered[1]:
                cancel(leg, invite, t0)
        if answered is None:
            return None
        leg, invite = answered
        settle(leg, invite, t0)
        return _Outcome(invite.status or 200, leg.to, [hang_up_of(leg, invite)])

    # --- legs to a TAS -----------------------------------------------------------------------------

    def _tas_leg(
        self,
        *,
        result: CallResult,
        request: CallRequest,
        registration: Registration,
        t0: float,
        prefix: str,
        route_back: str | None = None,
    ) -> tuple[Leg, ClientInvite]:
        """Leg 2: an INVITE for the called number, routed through the TAS (its `sips:` URI as the
        first Route; for a Loop, the core's own Route after it)."""
        # WG2: "00" turns `INVITE sip:+4711...` into `INVITE sip:+0047 11...`: the "+" stays.
        number = "+" + prefix + request.callee[1:] if prefix else request.callee
        request_uri = f"sips:{number}@{CORE_DOMAIN};user=phone"
        routes = [f"<{registration.sip_uri};lr>"]
        if route_back is not None:
            routes.append(self._listener.route_back(route_back))
        invite = ClientInvite(
            request_uri=request_uri,
            from_uri=f"sips:{request.caller}@{CORE_DOMAIN};user=phone",
            to_uri=f"sips:{request.callee}@{CORE_DOMAIN};user=phone",
            contact=self._listener.contact,
            context=self._context,
            routes=tuple(routes),
            extra_headers=(("p-served-user", f"<sips:{request.callee}@{CORE_DOMAIN}>"),),
        )
        leg = Leg(
            leg=2,
            to=registration.sip_uri,
            started=time.monotonic() - t0,
            request_uri=request_uri,
            registration=registration.route_type.removeprefix("ROUTE_TYPE_"),
        )
        result.legs.append(leg)
        return leg, invite

    # --- what arrives at the core's SIP port -------------------------------------------------------

    def on_invite(self, invite: ServerInvite) -> None:
        """Leg 3 of a Loop (its Route names a call waiting for it), or a TAS placing a call (Ingress)."""
        odi = next((_odi(route) for route in invite.request.values("route") if _odi(route)), "")
        if odi:
            with self._lock:
                waiting = self._loops.get(odi)
            if waiting is None:
                invite.respond(481)
                return
            waiting.put(invite)
            return
        self._ingress(invite)

    def _ingress(self, invite: ServerInvite) -> None:
        """INGRESS lets the TAS place calls to the MSISDN: the core rings that phone (leg 4)."""
        callee = _number_of(invite.request.uri)
        caller = _number_of(uri_of(invite.request.header("from"))) or uri_of(invite.request.header("from"))
        behaviour = invite.request.header("x-wg2sim-callee") or "answer"
        result = CallResult(caller, callee, behaviour, kind="ingress", started_at=time.time())
        t0 = time.monotonic()
        leg3 = Leg(
            leg=3,
            to=invite.request.uri,
            started=0.0,
            request_uri=invite.request.uri,
            source=f"sips:{invite.connection.peer}",
        )
        result.legs.append(leg3)
        allowed = [
            r
            for r in self._registrations.list()
            if r.msisdn == callee and r.route_type == "ROUTE_TYPE_INGRESS"
        ]
        result.routing = [
            {"msisdn": r.msisdn, "route_type": r.route_type, "sip_uri": r.sip_uri} for r in allowed
        ]
        if not allowed or behaviour not in CALLEE_BEHAVIOURS:
            status = 403 if not allowed else 400
            invite.respond(status, "No INGRESS registration for this number" if not allowed else "Bad callee")
        else:
            leg3.registration = "INGRESS"
            ringing = lambda: bool(invite.respond(180))  # noqa: E731
            outcome = self._to_callee(
                result=result,
                request=CallRequest(caller, callee, behaviour),
                forks=[],
                fallbacks=[],
                t0=t0,
                ringing=ringing,
            )
            invite.respond(outcome.status, sdp=outcome.status == 200)
            result.answered_by = outcome.answered_by
            if outcome.status == 200:
                invite.ended.wait(2)
        leg3.sip_status = invite.final_status
        leg3.answered_after = time.monotonic() - t0
        result.sip_status = invite.final_status or 0
        self._listener.forget(invite)
        self._remember(result)


def _routing(registration: Registration) -> dict[str, str]:
    return {
        "msisdn": registration.msisdn,
        "route_type": registration.route_type,
        "sip_uri": registration.sip_uri,
    }


def _odi(route: str) -> str:
    for part in uri_of(route).split(";")[1:]:
        key, _, value = part.partition("=")
        if key == "odi":
            return value
    return ""


def _number_of(uri: str) -> str:
    """The E.164 user part of `sips:+47...@host;user=phone` or `tel:+47...`."""
    rest = uri.split(":", 1)[-1]
    user = rest.split("@", 1)[0].split(";", 1)[0]
    return user if user.startswith("+") else ""

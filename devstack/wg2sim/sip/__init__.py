"""The emulated core's SIP over TLS: just enough RFC 3261 for the calls `calls/` places.

- `message`: `Message`, `StreamParser`: SIP messages on a stream transport (Content-Length
  framing, folded and compact headers, comma-separated Route/Record-Route/Via values), and the
  helpers that read headers, find where a URI is sent and build responses.
- `transport`: `Connection`, one TLS connection with a reader thread handing every message to a
  callback; the TLS contexts of both ends.
- `uac`: `ClientInvite`, a UAC INVITE on its own connection: provisional responses, the final
  one, ACK for a non-2xx in the same transaction, ACK for a 2xx as a new request along the
  dialog's route set, CANCEL while it rings, BYE to end an answered call.
- `uas`: `SipListener`, the core's own TLS port, where a TAS sends leg 3 (Loop) or places a call
  (Ingress); `ServerInvite` answers such an INVITE; ACK, BYE and CANCEL find their transaction
  or dialog.

Kept apart from `sipreg.sip` on purpose, like the rest of the emulator: it stands in for the
operator's side and must not share the provider's code.
"""

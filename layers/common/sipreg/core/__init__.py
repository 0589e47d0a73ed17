"""The gRPC client of WG2's `SipBreakoutService`, v0 and v1 behind one interface.

I/O only: it builds the request for the configured API version and auth mode, makes the call
with a bearer token, a deadline and gRPC's own retry policy, and turns every answer into a
typed `CoreOutcome`. It never raises for a gRPC status and never decides what an outcome means
for a registration: that is the worker's business.

Use `sipreg.wiring.parts.core_client(settings)` (one channel per process, reused across warm
invocations) and call `upsert`, `delete`, or `apply_many` for several calls at once (about one
round trip for all).

`port` holds what the rest of sipreg sees (the calls, their typed outcomes, the `CoreClient`
protocol; no gRPC), `requests` the request of each API version, `answers` what each answer of
the core means, `channel` the channel (TLS, retry policy, keep-alive), and `client` the
`GrpcCoreClient` that puts them together.
"""

"""wg2sim: a local stand-in for WG2's core (gRPC `SipBreakoutService` v0 + v1, the call path over
SIP/TLS) and its identity server, sharing one `Wg2Sim` state (clock, tokens, registrations,
faults, stats).

- `python -m devstack.wg2sim --help`: the process and its admin HTTP API.
- `devstack.wg2sim.process.Wg2simProcess`: run it as a subprocess (tests, demo, devstack).
- `devstack.wg2sim.server.Wg2simServer` + `devstack.wg2sim.http_app.create_http_app`: in-process.

Packages: `oidc` (the identity server: config, grant logic, routes), `sip` (SIP over TLS:
messages, transport, client and server side), `calls` (the call path: model, legs, routing).
"""

from devstack.wg2sim.faults import FaultConfig
from devstack.wg2sim.state import Wg2Sim
from devstack.wg2sim.tokens import SCOPE_V0, SCOPE_V1, Token, TokenRegistry

__all__ = ["SCOPE_V0", "SCOPE_V1", "FaultConfig", "Token", "TokenRegistry", "Wg2Sim"]

"""`make demo`: the core path, narrated. Emulator up, a FORK registration made and removed.

Starts `devstack.wg2sim`, mints a subscriber token at its admin API, upserts a FORK registration
through `sipreg.core` (the client the functions use), shows what the core holds, deletes it and
stops the emulator. Exits 0 only if every step did what it should.
"""

from __future__ import annotations

import sys

from devstack.wg2sim.process import Wg2simProcess
from sipreg.config import CoreSettings
from sipreg.core import Applied, Deleted, GrpcCoreClient
from sipreg.models import ApiVersion, Registration, RouteType, mask_msisdn

MSISDN = "+4799990000"
PBX = "sips:pbx.acme.example:5061"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def show_core(sim: Wg2simProcess) -> list[dict[str, str]]:
    held = sim.registrations()
    if not held:
        print("    the core holds no registrations")
    for reg in held:
        print(
            f"    {mask_msisdn(reg['msisdn'])}  {reg['route_type']:<20} {reg['sip_uri']:<30}"
            f" api {reg['api_version']}  expires {reg['expires_at']}"
        )
    return held


def main() -> int:
    step("Starting the operator-core emulator (devstack.wg2sim) on loopback")
    with Wg2simProcess.start() as sim:
        print(f"    gRPC {sim.grpc_target}, admin {sim.http_url}")

        step(f"Minting a subscriber token for {mask_msisdn(MSISDN)} (v0 scope)")
        token = sim.mint_token(msisdn=MSISDN, scopes=["call.control:answer_and_initiate"])
        print("    token minted (its value is never printed)")

        settings = CoreSettings(
            endpoint=sim.grpc_target, api_version=ApiVersion.V0, plaintext=True, deadline_seconds=5.0
        )
        registration = Registration(msisdn=MSISDN, sip_uri=PBX, route_type=RouteType.FORK)
        with GrpcCoreClient.from_settings(settings) as core:
            step(f"UpsertRegistration: FORK to {PBX}")
            upserted = core.upsert(registration, token)
            print(f"    outcome: {upserted}")
            held = show_core(sim)
            ok = isinstance(upserted, Applied) and [r["route_type"] for r in held] == ["ROUTE_TYPE_FORK"]

            step("DeleteRegistration")
            deleted = core.delete(registration, token)
            print(f"    outcome: {deleted}")
            ok = ok and isinstance(deleted, Deleted) and not show_core(sim)

        step("Stopping the emulator")
    print("\nDemo " + ("succeeded." if ok else "FAILED: the core did not end in the expected state."))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

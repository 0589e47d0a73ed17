"""Signed HTTP clients of the events API, shared by the `sipreg` command and the local scenarios.

    EventsApi(api, secret).send(events)          # a producer: POST /v1/events, signature v2
    OperatorApi(api).status("+4799990000")       # an operator: the IAM routes, SigV4

No function uses them. They live in the runtime package so that the CLI (sipreg_cli) and the
local stack (devstack) share one client without importing each other.
"""

from __future__ import annotations

from sipreg.client.errors import ApiError
from sipreg.client.operators import OperatorApi, OperatorCredentialsError, region_of
from sipreg.client.producers import EventsApi, Outcome

__all__ = ["ApiError", "EventsApi", "OperatorApi", "OperatorCredentialsError", "Outcome", "region_of"]

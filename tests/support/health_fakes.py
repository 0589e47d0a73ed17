"""In-memory fakes at the endpoint health check's ports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sipreg.store import ConcurrentUpdateError
from sipreg.store.endpoints import EndpointHealth


class Records:
    """The Endpoints table: each endpoint's last health."""

    def __init__(self) -> None:
        self.saved: dict[str, EndpointHealth] = {}

    def get_many(self, sip_uris: Sequence[str]) -> Mapping[str, EndpointHealth | None]:
        return {uri: self.saved.get(uri) for uri in sip_uris}

    def save(self, health: EndpointHealth, *, previous: EndpointHealth | None) -> None:
        if self.saved.get(health.sip_uri) != previous:
            raise ConcurrentUpdateError(health.sip_uri)
        self.saved[health.sip_uri] = health

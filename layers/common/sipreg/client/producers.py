"""A producer's client of the events API: `POST /v1/events`, signed with the webhook secret
(signature v2, sipreg.signing), one batch of up to 100 events per request."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sipreg.client.errors import ApiError
from sipreg.http import Answer, HttpError, Urllib3Http
from sipreg.signing import signed_headers

MAX_BATCH = 100


@dataclass
class Outcome:
    """Per event id: accepted, rejected (with the API's reasons) or failed (not accepted; resend)."""

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Outcome) -> None:
        self.accepted.extend(other.accepted)
        self.rejected.update(other.rejected)
        self.failed.update(other.failed)


class EventsApi:
    """A signing client of the events API (`POST /v1/events`)."""

    PATH = "/v1/events"

    def __init__(self, api: str, secret: str, *, timeout: float = 10.0, retries: int = 2) -> None:
        base = api.rstrip("/")
        self._url = base + self.PATH
        # The path as the request line carries it (a stage prefix included), which is what is signed.
        self._path = urlsplit(base).path.rstrip("/") + self.PATH
        self._secret = secret
        self._retries = retries
        self._http = Urllib3Http(timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EventsApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, events: Sequence[dict[str, Any]]) -> Outcome:
        """Posts one batch (<= 100), then resends what the queue did not take, `retries` times.
        Raises ApiError when the API refuses the signature or the request (401, 403)."""
        outcome = Outcome()
        pending = list(events)
        last_failures: dict[str, str] = {}
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(0.25 * attempt)
            result = self._post(pending)
            outcome.accepted.extend(result.accepted)
            outcome.rejected.update(result.rejected)
            if not result.failed:
                return outcome
            pending = [event for event in pending if event["id"] in result.failed]
            last_failures = result.failed
        outcome.failed.update(last_failures)
        return outcome

    def _post(self, events: Sequence[dict[str, Any]]) -> Outcome:
        ids = [str(event["id"]) for event in events]
        body = json.dumps({"events": list(events)}, separators=(",", ":")).encode()
        # Every attempt is a new request: a new request id, signed anew (an id is good once).
        headers = {
            "Content-Type": "application/json",
            **signed_headers(self._secret, "POST", self._path, body),
        }
        try:
            answer = self._http.post(self._url, body, headers)
        except HttpError as error:
            return Outcome(failed=dict.fromkeys(ids, f"no answer from the API ({error})"))
        if answer.status == 401:
            raise ApiError("the API refused the signature: check the secret, and this machine's clock")
        if answer.status == 403:
            raise ApiError("the API refused the request (403): is --api the events API's base URL?")
        problem = json_object(answer)
        if answer.status == 202:
            return Outcome(accepted=list(problem.get("accepted", ids)))
        if answer.status == 503 and "not_accepted" in problem:
            missing = set(problem["not_accepted"])
            return Outcome(
                accepted=[i for i in ids if i not in missing],
                failed=dict.fromkeys(problem["not_accepted"], "not accepted by the queue"),
            )
        if answer.status == 400:
            return Outcome(rejected=_reasons(ids, problem.get("errors", [])))
        reason = f"HTTP {answer.status} {problem.get('title', '')}".strip()
        return Outcome(failed=dict.fromkeys(ids, reason))


def json_object(answer: Answer) -> dict[str, Any]:
    """The answer's JSON object, or {} when it holds none (an empty body, HTML, a list)."""
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reasons(ids: Sequence[str], errors: Sequence[dict[str, str]]) -> dict[str, str]:
    """The API's field errors (`events.N.field`) per event id; the rest were refused with them."""
    per_id: dict[str, list[str]] = {}
    for error in errors:
        parts = str(error.get("field", "")).split(".")
        if len(parts) >= 2 and parts[0] == "events" and parts[1].isdigit() and int(parts[1]) < len(ids):
            where = ".".join(parts[2:]) or "event"
            per_id.setdefault(ids[int(parts[1])], []).append(f"{where}: {error.get('message')}")
    return {i: "; ".join(per_id.get(i, ["not sent: another event of its batch was refused"])) for i in ids}

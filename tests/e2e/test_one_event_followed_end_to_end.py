"""One event, followed end to end on the local stack: every log line about it, in the events API and
in the worker, carries its correlation id (the event id), and its trace shows the spans of the
work it caused (its own, the core call, the store commits), annotated with its id and outcome;
the traced functions' X-Ray segments are what the host's stand-in for the daemon received."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from devstack.scenario import Scenario, upsert


def json_lines(path: Path) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text().splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            found.append(parsed)
    return found


def under(span: dict[str, Any], documents: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The spans below `span`: nested in it, or (as Lambda streams them) naming it as parent."""
    children = [*span.get("subsegments", []), *(d for d in documents if d.get("parent_id") == span["id"])]
    for child in children:
        yield child
        yield from under(child, documents)


def test_the_event_id_is_on_every_line_about_it_and_its_spans_are_traced(
    pbx: str, scenario: Scenario, new_msisdn: Callable[[], str], devstack: dict[str, Any]
) -> None:
    # Given a consented subscriber, When the CRM sends one upsert and it reaches the core
    msisdn = new_msisdn()
    assert scenario.consent(msisdn).granted
    event_id = f"traced-{uuid.uuid4().hex[:10]}"
    assert scenario.send([upsert(event_id, msisdn, "fork", pbx, source="crm")]).accepted == [event_id]
    scenario.wait_for("the registration on the core", lambda: (msisdn, "FORK", pbx) in scenario.core_keys())
    logs = Path(devstack["log_dir"])
    # Then each function's lines that speak of the event carry its id as the correlation id
    for function in ("EventsApiFunction", "RegistrationWorkerFunction"):
        about = [line for line in json_lines(logs / f"{function}.log") if event_id in json.dumps(line)]
        assert about, f"{function} logged nothing about {event_id}"
        assert all(line.get("correlation_id") == event_id for line in about), about

    # And its trace holds its spans: the event (with its outcome), the core call, the store commits
    def spans_of_the_event() -> list[dict[str, Any]] | None:
        documents = json_lines(logs / "xray.jsonl") if (logs / "xray.jsonl").exists() else []
        for span in documents:
            if span.get("annotations", {}).get("event_id") == event_id:
                inner = list(under(span, documents))
                return [span, *inner] if any(s["name"] == "## core call" for s in inner) else None
        return None

    spans = scenario.wait_for("the event's spans", spans_of_the_event, 10)
    assert spans is not None
    event_span, *inner = spans
    assert event_span["name"] == "## event"
    assert event_span["annotations"]["outcome"] == "active"
    assert event_span["annotations"]["msisdn"] == msisdn[:3] + "*" * (len(msisdn) - 5) + msisdn[-2:]
    names = [span["name"] for span in inner]
    assert "## core call" in names and names.count("## store commit") == 2  # the claim, the outcome
    assert all(msisdn not in json.dumps(span) for span in spans)  # masked everywhere

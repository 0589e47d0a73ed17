"""`sipreg import FILE.csv` against the events API served by the local host, read back from the queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.host import LocalHost
from sipreg.events import from_json
from sipreg_cli import main
from tests.support.events_api import SECRET, drain

HEADER = "msisdn,route_type,sip_uri,mobile_originating_prefix,mobile_terminating_prefix\n"
MIXED = (
    HEADER
    + "+4799990000,fork,sips:pbx.example.com:5061,,\n"  # line 2: good
    + "4799990001,fork,sips:pbx.example.com,,\n"  # line 3: msisdn without +
    + "+4799990002,FALLBACK,sips:voicemail.example.com,,00\n"  # line 4: good
    + "+4799990003,forward,sip:pbx.example.com,,\n"  # line 5: route type and scheme
    + "\n"  # line 6: blank, skipped
    + "+4799990004,loop,sips:pbx.example.com,00,\n"  # line 7: good
    + "+4799990000,fork,sips:PBX.example.com:5061,,\n"  # line 8: repeats line 2
)


@pytest.fixture
def queued(aws_endpoint: str, queue_url: str) -> Callable[[], list[dict[str, Any]]]:
    """The events now on the queue (taken off it), in id order."""

    def take() -> list[dict[str, Any]]:
        events = [json.loads(message["Body"]) for message in drain(aws_endpoint, queue_url)]
        return sorted(events, key=lambda event: event["id"])

    return take


@pytest.fixture
def target(host: LocalHost, queued: Callable[[], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """$SIPREG_API and $SIPREG_WEBHOOK_SECRET name the local stack; the queue starts empty."""
    queued()
    assert host.api_url
    monkeypatch.setenv("SIPREG_API", host.api_url)
    monkeypatch.setenv("SIPREG_WEBHOOK_SECRET", SECRET)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subscribers.csv"
    path.write_text(text)
    return path


@pytest.mark.usefixtures("target")
def test_bad_rows_are_listed_by_line_and_nothing_is_sent(
    tmp_path: Path, queued: Callable[[], list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["import", str(write(tmp_path, MIXED))])

    err = capsys.readouterr().err
    assert status == 1
    assert "line 3: msisdn: must be E.164" in err
    assert "line 5: route_type: must be one of" in err and "sip_uri: must start with 'sips:'" in err
    assert "line 8: repeats the msisdn and sip_uri of line 2" in err
    assert "line 2" not in err.replace("of line 2", "")
    assert "3 bad rows, nothing sent" in err
    assert queued() == []


@pytest.mark.usefixtures("target")
def test_with_skip_invalid_the_good_rows_are_sent_and_summed_up(
    tmp_path: Path, queued: Callable[[], list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["import", str(write(tmp_path, MIXED)), "--skip-invalid"])

    out = capsys.readouterr()
    assert status == 1  # some rows were rejected
    assert out.out.strip() == "sent 3, rejected 3, failed 0"
    assert "sent 3/3" in out.err
    events = queued()
    assert [(e["msisdn"], e["registration"]["route_type"], e["id"].rsplit("-", 1)[1]) for e in events] == [
        ("+4799990000", "fork", "2"),
        ("+4799990002", "fallback", "4"),
        ("+4799990004", "loop", "7"),
    ]
    assert all(from_json(json.dumps(e)).type == "registration.upsert" for e in events)
    assert events[1]["registration"]["mobile_terminating_prefix"] == "00"
    assert {e["source"] for e in events} == {"import"}


@pytest.mark.usefixtures("target")
def test_a_large_file_goes_in_batches_with_progress_and_again_changes_nothing(
    tmp_path: Path, queued: Callable[[], list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "".join(f"+4798{n:06},fork,sips:pbx{n % 3}.example.com,,\n" for n in range(60))
    path = write(tmp_path, HEADER + rows)

    first = main(["import", str(path), "--batch-size", "25"])
    again = main(["import", str(path), "--batch-size", "25"])  # e.g. after a network error: same ids

    out = capsys.readouterr()
    assert (first, again) == (0, 0)
    assert out.out.splitlines() == ["sent 60, rejected 0, failed 0"] * 2
    assert "sent 25/60" in out.err and "sent 50/60" in out.err and "sent 60/60" in out.err
    events = queued()
    assert len(events) == 60
    assert len({event["id"] for event in events}) == 60


def test_a_header_without_the_required_columns_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["import", str(write(tmp_path, "number,sip\n+4799990000,sips:x.example\n")), "--dry-run"])

    err = capsys.readouterr().err
    assert status == 2
    assert "missing: msisdn, route_type, sip_uri" in err
    assert "unknown: number, sip" in err


def test_a_dry_run_checks_every_row_without_an_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = HEADER + "+4799990000,fork,sips:pbx.example.com,,\n"

    assert main(["import", str(write(tmp_path, good)), "--dry-run"]) == 0
    assert "1 rows valid, 0 bad" in capsys.readouterr().out

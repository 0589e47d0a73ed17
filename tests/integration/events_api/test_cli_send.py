"""`sipreg send` against the events API served by the local host, read back from the queue."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.host import LocalHost
from sipreg_cli import main
from tests.support.events_api import SECRET, drain, upsert


@pytest.fixture
def api(host: LocalHost, queued: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch) -> str:
    """The API's URL, with its signing secret in $CRM_SECRET and an empty queue."""
    queued()  # empty it
    monkeypatch.setenv("CRM_SECRET", SECRET)
    monkeypatch.delenv("SIPREG_API", raising=False)
    monkeypatch.delenv("SIPREG_WEBHOOK_SECRET", raising=False)
    assert host.api_url
    return host.api_url


@pytest.fixture
def queued(aws_endpoint: str, queue_url: str) -> Callable[[], list[str]]:
    """The ids of the events now on the queue (taken off it)."""
    return lambda: sorted(json.loads(m["Body"])["id"] for m in drain(aws_endpoint, queue_url))


def lines(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def test_a_file_of_events_is_signed_posted_and_reported_per_id(
    api: str, tmp_path: Path, queued: Callable[[], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "events.json"
    file.write_text(json.dumps({"events": [upsert("crm-1"), upsert("crm-2", msisdn="+4799990001")]}))

    status = main(["send", str(file), "--api", api, "--secret-env", "CRM_SECRET"])

    out = capsys.readouterr()
    assert status == 0
    assert lines(out.out) == [["accepted", "crm-1"], ["accepted", "crm-2"]]
    assert "2 accepted, 0 rejected, 0 failed" in out.err
    assert SECRET not in out.out + out.err
    assert queued() == ["crm-1", "crm-2"]


def test_json_lines_from_stdin_go_in_batches_of_the_size_asked(
    api: str,
    queued: Callable[[], list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = "\n".join(json.dumps(upsert(f"line-{n}", msisdn=f"+47999902{n:02}")) for n in range(7))
    monkeypatch.setattr("sys.stdin", io.StringIO(stream + "\n"))

    status = main(["send", "-", "--api", api, "--secret-env", "CRM_SECRET", "--batch-size", "3"])

    assert status == 0
    assert [line[1] for line in lines(capsys.readouterr().out)] == [f"line-{n}" for n in range(7)]
    assert queued() == [f"line-{n}" for n in range(7)]


def test_the_target_comes_from_the_environment_when_no_flags_name_it(
    api: str, tmp_path: Path, queued: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIPREG_API", api)
    monkeypatch.setenv("SIPREG_WEBHOOK_SECRET", SECRET)
    file = tmp_path / "one.json"
    file.write_text(json.dumps(upsert("env-1")))

    assert main(["send", str(file)]) == 0
    assert queued() == ["env-1"]


def test_an_invalid_event_stops_the_send_before_anything_is_posted(
    api: str, tmp_path: Path, queued: Callable[[], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "events.json"
    file.write_text(json.dumps([upsert("ok-1"), upsert("bad-1", msisdn="0047")]))

    status = main(["send", str(file), "--api", api, "--secret-env", "CRM_SECRET"])

    assert status == 2
    assert "events.1.msisdn: must be E.164" in capsys.readouterr().err
    assert queued() == []


def test_a_wrong_secret_is_reported_without_showing_any_secret(
    api: str,
    tmp_path: Path,
    queued: Callable[[], list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_SECRET", "not-the-secret")
    file = tmp_path / "one.json"
    file.write_text(json.dumps(upsert("wrong-1")))

    status = main(["send", str(file), "--api", api, "--secret-env", "CRM_SECRET"])

    err = capsys.readouterr().err
    assert status == 2
    assert "refused the signature" in err
    assert "not-the-secret" not in err
    assert queued() == []


def test_a_missing_secret_variable_is_named(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "one.json"
    file.write_text(json.dumps(upsert()))

    assert main(["send", str(file), "--api", api, "--secret-env", "NO_SUCH_VARIABLE"]) == 2
    assert "NO_SUCH_VARIABLE" in capsys.readouterr().err


def test_an_api_that_does_not_answer_leaves_every_id_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SECRET", SECRET)
    file = tmp_path / "one.json"
    file.write_text(json.dumps(upsert("lost-1")))

    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    status = main(
        ["send", str(file), "--api", "http://127.0.0.1:9", "--secret-env", "CRM_SECRET", "--timeout", "2"]
    )

    assert status == 1
    [[outcome, event_id, reason]] = lines(capsys.readouterr().out)
    assert (outcome, event_id) == ("failed", "lost-1")
    assert "no answer" in reason

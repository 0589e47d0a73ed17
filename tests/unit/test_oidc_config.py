"""Given identity-server clients from flags or a file, the emulator registers them exactly, keeps
the dev client, and refuses bad ones with a message naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.wg2sim.__main__ import build_parser, main
from devstack.wg2sim.oidc.config import DEV_CLIENT, oidc_config_from_args, parse_client


def test_a_client_flag_keeps_colons_inside_the_redirect_uri() -> None:
    client = parse_client("crm:s3cret-value:http://127.0.0.1:3000/oauth/callback")
    assert (client.client_id, client.redirect_uris) == ("crm", ("http://127.0.0.1:3000/oauth/callback",))
    assert client.secret_matches("s3cret-value")
    assert "s3cret-value" not in repr(client)


def test_flags_and_file_add_to_the_dev_client(tmp_path: Path) -> None:
    clients_file = tmp_path / "clients.json"
    clients_file.write_text(
        json.dumps(
            [{"client_id": "b", "client_secret": "secret-b-123", "redirect_uris": ["https://b.example/cb"]}]
        )
    )
    args = build_parser().parse_args(
        ["--oidc-client", "a:secret-a:https://a.example/cb", "--oidc-clients-file", str(clients_file)]
    )
    config = oidc_config_from_args(args)
    assert set(config.clients) == {DEV_CLIENT.client_id, "a", "b"}
    assert config.clients["b"].redirect_uris == ("https://b.example/cb",)
    assert config.issuer is None


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--oidc-client", "only-an-id"], "--oidc-client"),
        (["--oidc-client", "a:s:not-a-url"], "--oidc-client"),
        (["--oidc-clients-file", "/nonexistent/clients.json"], "--oidc-clients-file"),
    ],
)
def test_a_bad_client_is_refused_at_start_naming_the_flag(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(flags) == 2
    assert named in capsys.readouterr().err


def test_a_file_with_a_short_secret_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clients_file = tmp_path / "clients.json"
    clients_file.write_text(
        json.dumps([{"client_id": "b", "client_secret": "x", "redirect_uris": ["https://b/"]}])
    )
    assert main(["--oidc-clients-file", str(clients_file)]) == 2
    assert "client_secret" in capsys.readouterr().err


def test_phone_number_only_in_userinfo_is_a_flag() -> None:
    assert oidc_config_from_args(build_parser().parse_args([])).phone_number_in_id_token is True
    flagged = build_parser().parse_args(["--oidc-phone-number-only-in-userinfo"])
    assert oidc_config_from_args(flagged).phone_number_in_id_token is False

"""Given template.yaml's consent functions on the local host (moto server) and wg2sim as the
identity server, a subscriber walking the pages ends with stored, encrypted, working tokens; and
every way the flow can go wrong stores nothing. All over real sockets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from devstack.consent_walk import walk_consent
from devstack.wg2sim.process import Wg2simProcess
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2 as v0
from sipreg.proto.wgtwo.sipbreakout.v0 import sipbreakout_pb2_grpc as v0_grpc
from sipreg.tokens import SERVICE_SCOPES, KmsCipher
from tests.support.consent import RETURN_TO, ConsentStack, consent_stack, query_of


@pytest.fixture(scope="module")
def stack(
    aws_endpoint: str, wg2sim: Wg2simProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsentStack]:
    with consent_stack(aws_endpoint, wg2sim, tmp_path_factory.mktemp("consent-logs")) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def start_url(stack: ConsentStack, **query: str) -> str:
    return f"{stack.api_url}/oauth/start?{urlencode(query)}"


def stored_tokens(stack: ConsentStack, msisdn: str) -> tuple[str, str]:
    item = stack.raw_subscriber(msisdn)
    assert item is not None
    cipher = KmsCipher(stack.ref("DataKey", "Arn"), client=stack.aws("kms"))
    return (
        cipher.decrypt(item["access_token_ciphertext"]["B"], msisdn=msisdn),
        cipher.decrypt(item["refresh_token_ciphertext"]["B"], msisdn=msisdn),
    )


def test_full_flow_stores_encrypted_tokens_the_core_accepts(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str], wg2_channel
) -> None:
    msisdn = new_msisdn()
    stack.queued()
    # When the subscriber opens the link and walks number -> PIN -> Allow
    walk = walk_consent(http, start_url(stack, msisdn=msisdn), msisdn=msisdn)
    # Then the success page names the number masked, never in full
    assert walk.final.status_code == 200
    assert "Consent granted" in walk.final.text
    assert f"{msisdn[:3]}{'*' * (len(msisdn) - 5)}{msisdn[-2:]}" in walk.final.text
    assert msisdn not in walk.final.text
    assert walk.final.headers["cache-control"] == "no-store"
    # And the subscriber is stored with scopes and encrypted tokens
    item = stack.raw_subscriber(msisdn)
    assert item is not None
    assert item["status"]["S"] == "consented"
    assert "call.control:answer_and_initiate" in [scope["S"] for scope in item["scopes"]["L"]]
    access, refresh = stored_tokens(stack, msisdn)
    # And no attribute holds a token in plaintext
    raw = json.dumps(item, default=repr)
    assert access not in raw
    assert refresh not in raw
    # And the ciphertext is bound to this MSISDN (KMS encryption context)
    cipher = KmsCipher(stack.ref("DataKey", "Arn"), client=stack.aws("kms"))
    with pytest.raises(Exception, match="InvalidCiphertext"):
        cipher.decrypt(item["access_token_ciphertext"]["B"], msisdn="+4799990000")
    # And subscriber.consented for the MSISDN is on the queue (group = MSISDN)
    messages = [m for m in stack.queued() if json.loads(m["Body"])["msisdn"] == msisdn]
    assert [json.loads(m["Body"])["type"] for m in messages] == ["subscriber.consented"]
    # And the core accepts the access token for this subscriber
    stub = v0_grpc.SipBreakoutServiceStub(wg2_channel(stack.sim))
    answer = stub.UpsertRegistration(
        v0.UpsertRegistrationRequest(
            registration=v0.Registration(sip_uri="sips:pbx.acme.example", route_type=v0.ROUTE_TYPE_FORK)
        ),
        metadata=[("authorization", f"Bearer {access}")],
        timeout=5,
    )
    assert answer.status_code == v0.STATUS_CODE_OK
    assert msisdn in [r["msisdn"] for r in stack.sim.registrations()]
    # And no token, code, state or secret shows in the functions' logs
    logs = stack.function_logs()
    assert logs  # the functions did log
    callback_query = query_of(walk.callback_url)
    for secret in (
        access,
        refresh,
        stack.client_secret,
        callback_query["code"][0],
        callback_query["state"][0],
    ):
        assert secret not in logs
    assert msisdn not in logs


def test_replayed_callback_is_refused_and_changes_nothing(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    walk = walk_consent(http, start_url(stack), msisdn=msisdn)
    assert walk.final.status_code == 200
    before = stack.raw_subscriber(msisdn)
    replay = http.get(walk.callback_url)
    assert replay.status_code == 400
    assert "already used" in replay.text
    assert stack.raw_subscriber(msisdn) == before


def test_expired_state_is_refused_and_stores_nothing(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    walk = walk_consent(http, start_url(stack), msisdn=msisdn, follow_callback=False)
    state = query_of(walk.callback_url)["state"][0]
    # Given the state's 10 minutes ran out (TTL deletion lags, as in AWS)
    stack.aws("dynamodb").update_item(
        TableName=stack.states_table,
        Key={"state": {"S": state}},
        UpdateExpression="SET expires = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    answer = http.get(walk.callback_url)
    assert answer.status_code == 400
    assert "expired" in answer.text
    assert stack.raw_subscriber(msisdn) is None


def test_unknown_or_missing_state_is_refused(stack: ConsentStack, http: httpx.Client) -> None:
    unknown = http.get(f"{stack.api_url}/oauth/callback?code=abc&state=never-issued")
    missing = http.get(f"{stack.api_url}/oauth/callback?code=abc")
    assert (unknown.status_code, missing.status_code) == (400, 400)


@pytest.mark.parametrize("state", ["s" * 2049, "s" * 129, "not base64url!"])
def test_a_state_we_could_not_have_issued_is_unknown_not_a_server_error(
    stack: ConsentStack, http: httpx.Client, state: str
) -> None:
    # A state longer than DynamoDB's 2048-byte key is refused by the table itself (the local engine
    # enforces it as DynamoDB does): the callback must not ask it.
    answer = http.get(f"{stack.api_url}/oauth/callback", params={"code": "abc", "state": state})
    unknown = http.get(f"{stack.api_url}/oauth/callback", params={"code": "abc", "state": "never-issued"})
    assert (answer.status_code, answer.text) == (400, unknown.text)


def test_access_denied_shows_declined_and_stores_nothing(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    stack.queued()
    walk = walk_consent(http, start_url(stack, msisdn=msisdn), msisdn=msisdn, decision="deny")
    assert query_of(walk.callback_url)["error"] == ["access_denied"]
    assert walk.final.status_code == 200
    assert "Consent declined" in walk.final.text
    assert stack.raw_subscriber(msisdn) is None
    assert not [m for m in stack.queued() if msisdn in m["Body"]]


def test_a_number_the_identity_server_has_not_verified_is_refused_and_stores_nothing(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    # Given a number the identity server knows but has not verified (phone_number_verified false)
    msisdn = new_msisdn()
    stack.sim.mark_unverified(msisdn)
    stack.queued()
    # When its subscriber walks the pages and allows
    walk = walk_consent(http, start_url(stack, msisdn=msisdn), msisdn=msisdn)
    # Then the callback refuses to link it: nothing stored, nothing announced
    assert walk.final.status_code == 400
    assert "not confirmed" in walk.final.text
    assert stack.raw_subscriber(msisdn) is None
    assert not [m for m in stack.queued() if msisdn in m["Body"]]


def test_a_consent_without_the_service_scope_is_refused_and_stores_nothing(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    stack.queued()
    # When the subscriber unticks the service scope and allows the rest
    walk = walk_consent(
        http, start_url(stack, msisdn=msisdn), msisdn=msisdn, withhold=tuple(SERVICE_SCOPES.values())
    )
    # Then the identity server grants less (and says so), and the callback refuses to link it
    assert query_of(walk.callback_url)["scope"] == ["openid phone offline_access"]
    assert walk.final.status_code == 400
    assert "Not everything needed was allowed" in walk.final.text
    assert stack.raw_subscriber(msisdn) is None
    assert not [m for m in stack.queued() if msisdn in m["Body"]]


def test_return_to_on_the_allow_list_gets_the_browser_back(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    msisdn = new_msisdn()
    walk = walk_consent(http, start_url(stack, return_to=RETURN_TO), msisdn=msisdn, follow_callback=False)
    answer = http.get(walk.callback_url)
    assert answer.status_code == 302
    assert answer.headers["location"] == f"{RETURN_TO}?consent=granted"


@pytest.mark.parametrize(
    ("query", "field"),
    [({"return_to": "https://crm.example.evil.test/x"}, "return_to"), ({"msisdn": "4799990000"}, "msisdn")],
)
def test_bad_start_parameters_get_a_400_page_naming_the_field(
    stack: ConsentStack, http: httpx.Client, query: dict[str, str], field: str
) -> None:
    answer = http.get(start_url(stack, **query))
    assert answer.status_code == 400
    assert f"{field}:" in answer.text
    assert "location" not in answer.headers


def test_start_keeps_a_fresh_state_and_sends_pkce_s256(stack: ConsentStack, http: httpx.Client) -> None:
    first = http.get(start_url(stack))
    second = httpx.get(start_url(stack), timeout=10)
    assert first.status_code == second.status_code == 302
    one, two = query_of(first.headers["location"]), query_of(second.headers["location"])
    assert one["state"] != two["state"]
    assert len(one["state"][0]) >= 22  # >= 128 bits in base64url
    assert one["code_challenge_method"] == ["S256"]
    assert one["scope"] == ["openid phone offline_access call.control:answer_and_initiate"]
    # OIDC Core §11: offline_access counts only with prompt=consent
    assert one["prompt"] == ["consent"]
    # And the browser is bound to its flows by a short-lived HttpOnly SameSite cookie
    cookie = [part.strip() for part in first.headers["set-cookie"].split(";")]
    assert cookie[0].startswith("sipreg_consent=")
    assert {"HttpOnly", "SameSite=Lax", "Path=/oauth", "Max-Age=600"} <= set(cookie)
    item = stack.aws("dynamodb").get_item(TableName=stack.states_table, Key={"state": {"S": one["state"][0]}})
    assert 590 <= int(item["Item"]["expires"]["N"]) - time.time() <= 600
    assert "sipreg_consent=" not in json.dumps(item)  # only the binding's hash is stored


def test_a_consent_yields_a_stored_refresh_token_the_identity_server_accepts(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    # Defect: without prompt=consent a certified provider ignores offline_access (OIDC Core §11)
    msisdn = new_msisdn()
    assert walk_consent(http, start_url(stack, msisdn=msisdn), msisdn=msisdn).final.status_code == 200
    item = stack.raw_subscriber(msisdn)
    assert item is not None
    assert "refresh_token_ciphertext" in item
    assert item.get("refresh_token_missing", {"BOOL": False}) == {"BOOL": False}
    _, refresh = stored_tokens(stack, msisdn)
    answer = http.post(
        f"{stack.sim.http_url}/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=stack.basic_auth(),
    )
    assert answer.status_code == 200
    assert answer.json()["access_token"]


def _with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


@pytest.mark.parametrize("iss", ["https://id.evil.example", None])
def test_a_callback_with_a_foreign_or_missing_iss_is_refused_and_stores_nothing(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str], iss: str | None
) -> None:
    # RFC 9207: wg2sim announces iss in its discovery document and sends it
    msisdn = new_msisdn()
    walk = walk_consent(http, start_url(stack, msisdn=msisdn), msisdn=msisdn, follow_callback=False)
    assert query_of(walk.callback_url)["iss"] == [stack.sim.http_url]
    # When the answer comes back naming another issuer (a mix-up), or none
    answer = http.get(_with_query(walk.callback_url, iss=iss))
    # Then a 4xx page says so, and nothing is stored or announced
    assert answer.status_code == 400
    assert "another identity server" in answer.text
    assert "Traceback" not in answer.text
    assert stack.raw_subscriber(msisdn) is None


def test_a_callback_in_another_browser_is_refused_and_stores_nothing(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    # Login CSRF (RFC 9700 §4.7): an attacker walks the flow for their number in their browser...
    msisdn = new_msisdn()
    walk = walk_consent(http, start_url(stack, msisdn=msisdn), msisdn=msisdn, follow_callback=False)
    # ...and sends the callback link to someone else, whose browser opens it
    with httpx.Client(timeout=10) as victim:
        answer = victim.get(walk.callback_url)
    assert answer.status_code == 400
    assert "another browser" in answer.text
    assert stack.raw_subscriber(msisdn) is None
    # And the flow is used up: the attacker's own browser cannot finish it afterwards either
    assert http.get(walk.callback_url).status_code == 400


def test_consent_still_verifies_after_the_signing_key_rotates(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    # Given the callback function has the identity server's JWKS cached from an earlier consent
    assert walk_consent(http, start_url(stack), msisdn=new_msisdn()).final.status_code == 200
    # When the identity server rotates its key without notice (old key withdrawn at once)
    httpx.post(f"{stack.sim.http_url}/_admin/rotate-keys", json={"keep_previous": False}, timeout=5)
    # Then the next consent (another subscriber, another browser) still verifies (unknown kid -> refetch)
    msisdn = new_msisdn()
    with httpx.Client(timeout=10) as other_browser:
        walk = walk_consent(other_browser, start_url(stack), msisdn=msisdn)
    assert walk.final.status_code == 200, walk.final.text
    assert stack.raw_subscriber(msisdn) is not None


def test_the_server_refuses_wrong_or_missing_pkce_verifiers(
    stack: ConsentStack, http: httpx.Client, new_msisdn: Callable[[], str]
) -> None:
    # Given a code obtained through our start function (its verifier stays in our table)
    walk = walk_consent(http, start_url(stack), msisdn=new_msisdn(), follow_callback=False)
    code = query_of(walk.callback_url)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": f"{stack.api_url}/oauth/callback",
    }
    auth = stack.basic_auth()
    # When someone holding only the code tries it without, or with a made-up, verifier
    missing = http.post(f"{stack.sim.http_url}/oauth2/token", data=form, auth=auth)
    wrong = http.post(
        f"{stack.sim.http_url}/oauth2/token", data={**form, "code_verifier": "x" * 64}, auth=auth
    )
    # Then the server refuses both, and the code is used up
    assert missing.status_code == wrong.status_code == 400
    assert "access_token" not in missing.json() | wrong.json()
    assert http.get(walk.callback_url).status_code == 400


def test_functions_are_wired_as_template_routes(stack: ConsentStack, http: httpx.Client) -> None:
    assert http.post(f"{stack.api_url}/oauth/start").status_code in (404, 405)

"""The event model: which events are valid, and what each refusal says about which field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipreg.events import (
    ConsentedEvent,
    DeleteEvent,
    EventType,
    InvalidEventsError,
    RefreshEvent,
    RevokeEvent,
    UpsertEvent,
    from_json,
    parse_event,
    parse_events,
    to_json,
)
from sipreg.models import RouteType
from tests.support.events_api import upsert


def delete(**overrides: Any) -> dict[str, Any]:
    event = {**upsert(), "type": "registration.delete", "registration": {"sip_uri": "sips:pbx.example.com"}}
    event.update(overrides)
    return event


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def with_registration(**fields: Any) -> dict[str, Any]:
    base = upsert()
    return {**base, "registration": {**base["registration"], **fields}}


def refusal(data: Any) -> dict[str, str]:
    with pytest.raises(InvalidEventsError) as caught:
        parse_event(data)
    return {error.field: error.message for error in caught.value.errors}


# --- valid events -------------------------------------------------------------------------------

VALID = [
    pytest.param(upsert(), id="upsert, minimal"),
    pytest.param(upsert(source="crm"), id="source"),
    pytest.param(upsert(source="x" * 64), id="source of 64 chars"),
    pytest.param(upsert(event_id="a"), id="id of 1 char"),
    pytest.param(upsert(event_id="A" * 128), id="id of 128 chars"),
    pytest.param(upsert(event_id="crm:2025-06-01_00.1-x"), id="id with every allowed punctuation"),
    pytest.param(upsert(msisdn="+12345678"), id="msisdn of 8 digits"),
    pytest.param(upsert(msisdn="+123456789012345"), id="msisdn of 15 digits"),
    pytest.param(upsert(occurred_at="2025-06-01T12:00:00+02:00"), id="occurred_at with offset"),
    pytest.param(
        upsert(occurred_at="2025-06-01t12:00:00.123456z"), id="occurred_at lower-case t, z, fraction"
    ),
    pytest.param(with_registration(route_type="LOOP"), id="route type upper-case"),
    pytest.param(with_registration(route_type="Fallback"), id="route type mixed case"),
    pytest.param(with_registration(route_type="ingress"), id="route type of v1"),
    pytest.param(with_registration(sip_uri="sips:[2001:db8::1]:5061"), id="sip_uri IPv6 and port"),
    pytest.param(with_registration(sip_uri="sips:192.0.2.7"), id="sip_uri IPv4"),
    pytest.param(with_registration(mobile_originating_prefix="00"), id="originating prefix"),
    pytest.param(with_registration(mobile_terminating_prefix="12345678"), id="terminating prefix of 8"),
    pytest.param(with_registration(mobile_originating_prefix=""), id="empty prefix means none"),
    pytest.param(delete(), id="delete with only sip_uri"),
    pytest.param(
        delete(registration={"sip_uri": "sips:pbx.example.com", "route_type": "fork"}), id="delete, full"
    ),
]


@pytest.mark.parametrize("data", VALID)
def test_valid_events_are_accepted(data: dict[str, Any]) -> None:
    event = parse_event(data)

    assert event.id == data["id"]
    assert event.type == data["type"]
    assert event.msisdn == data["msisdn"]


def test_an_upsert_normalises_what_is_case_insensitive() -> None:
    event = parse_event(with_registration(route_type="FORK", sip_uri="SIPS:PBX.Example.COM:05061"))

    assert isinstance(event, UpsertEvent)
    assert event.registration.route_type is RouteType.FORK
    assert event.registration.sip_uri == "sips:pbx.example.com:5061"
    assert event.registration.at(event.msisdn, event.registration.sip_uri).msisdn == "+4799990000"


def test_occurred_at_keeps_its_instant_whatever_the_offset() -> None:
    event = parse_event(upsert(occurred_at="2025-06-01T14:00:00+02:00"))

    assert event.occurred_at == datetime(2025, 6, 1, 12, tzinfo=UTC)


# --- invalid events: every field, every rule ----------------------------------------------------

INVALID = [
    # id
    pytest.param(without(upsert(), "id"), "id", "is required", id="id missing"),
    pytest.param(upsert(event_id=""), "id", "1 to 128 characters", id="id empty"),
    pytest.param(upsert(event_id="a" * 129), "id", "1 to 128 characters", id="id too long"),
    pytest.param(upsert(event_id="a b"), "id", "1 to 128 characters", id="id with a space"),
    pytest.param(upsert(event_id="a/b"), "id", "1 to 128 characters", id="id with a slash"),
    pytest.param(upsert(event_id="é"), "id", "1 to 128 characters", id="id not ASCII"),
    pytest.param({**upsert(), "id": 7}, "id", "string", id="id a number"),
    # type
    pytest.param(without(upsert(), "type"), "type", "is required", id="type missing"),
    pytest.param(upsert(type="registration.create"), "type", "must be one of", id="type unknown"),
    pytest.param(upsert(type="subscriber.revoke"), "type", "internal", id="type internal: revoke"),
    pytest.param(upsert(type="registration.refresh"), "type", "internal", id="type internal: refresh"),
    pytest.param(upsert(type="subscriber.consented"), "type", "internal", id="type internal: consented"),
    # msisdn
    pytest.param(without(upsert(), "msisdn"), "msisdn", "is required", id="msisdn missing"),
    pytest.param(upsert(msisdn="4799990000"), "msisdn", "E.164", id="msisdn without +"),
    pytest.param(upsert(msisdn="+0799990000"), "msisdn", "E.164", id="msisdn leading 0"),
    pytest.param(upsert(msisdn="+1234567"), "msisdn", "E.164", id="msisdn 7 digits"),
    pytest.param(upsert(msisdn="+1234567890123456"), "msisdn", "E.164", id="msisdn 16 digits"),
    pytest.param(upsert(msisdn="+47 9999 0000"), "msisdn", "E.164", id="msisdn with spaces"),
    # registration
    pytest.param(without(upsert(), "registration"), "registration", "is required", id="registration missing"),
    pytest.param(upsert(registration="sips:x.example"), "registration", "object", id="registration a string"),
    pytest.param(
        with_registration(route_type=None), "registration.route_type", "must be one of", id="route null"
    ),
    pytest.param(
        {**upsert(), "registration": {"sip_uri": "sips:pbx.example.com"}},
        "registration.route_type",
        "is required",
        id="upsert without route type",
    ),
    pytest.param(
        with_registration(route_type="forward"), "registration.route_type", "one of", id="route unknown"
    ),
    pytest.param(
        {**upsert(), "registration": {"route_type": "fork"}},
        "registration.sip_uri",
        "is required",
        id="no sip_uri",
    ),
    pytest.param(
        with_registration(sip_uri="sip:pbx.example.com"), "registration.sip_uri", "sips:", id="sip scheme"
    ),
    pytest.param(with_registration(sip_uri="sips:"), "registration.sip_uri", "host", id="sip_uri no host"),
    pytest.param(
        with_registration(sip_uri="sips:u@pbx.example.com"), "registration.sip_uri", "user", id="user"
    ),
    pytest.param(
        with_registration(sip_uri="sips:pbx.example.com;t=1"), "registration.sip_uri", "param", id="params"
    ),
    pytest.param(
        with_registration(sip_uri="sips:pbx.example.com:0"), "registration.sip_uri", "port", id="port 0"
    ),
    pytest.param(
        with_registration(sip_uri="sips:pbx.example.com:65536"), "registration.sip_uri", "port", id="port"
    ),
    pytest.param(
        with_registration(sip_uri="sips:-bad-.example"), "registration.sip_uri", "DNS", id="bad DNS label"
    ),
    pytest.param(with_registration(sip_uri="sips:300.1.1.1"), "registration.sip_uri", "IPv4", id="bad IPv4"),
    pytest.param(with_registration(sip_uri="sips:[zz::1]"), "registration.sip_uri", "IPv6", id="bad IPv6"),
    pytest.param(
        with_registration(mobile_originating_prefix="+00"),
        "registration.mobile_originating_prefix",
        "digits",
        id="pfx",
    ),
    pytest.param(
        with_registration(mobile_terminating_prefix="123456789"),
        "registration.mobile_terminating_prefix",
        "1 to 8 digits",
        id="prefix of 9",
    ),
    pytest.param(
        with_registration(colour="blue"), "registration.colour", "not a known field", id="unknown in reg"
    ),
    pytest.param(
        delete(registration={"sip_uri": "sips:x.example", "expires": 1}),
        "registration.expires",
        "not a known field",
        id="unknown in delete registration",
    ),
    pytest.param(delete(registration={}), "registration.sip_uri", "is required", id="delete without sip_uri"),
    # occurred_at
    pytest.param(without(upsert(), "occurred_at"), "occurred_at", "is required", id="occurred_at missing"),
    pytest.param(upsert(occurred_at="2025-06-01T12:00:00"), "occurred_at", "offset", id="no offset"),
    pytest.param(upsert(occurred_at="2025-06-01 12:00:00Z"), "occurred_at", "RFC 3339", id="space, not T"),
    pytest.param(upsert(occurred_at="2025-06-01"), "occurred_at", "RFC 3339", id="date only"),
    pytest.param(upsert(occurred_at=1748779200), "occurred_at", "RFC 3339", id="epoch number"),
    pytest.param(upsert(occurred_at="2025-13-01T12:00:00Z"), "occurred_at", "date", id="month 13"),
    pytest.param(
        upsert(occurred_at="2025-06-01T12:00:00+0200"), "occurred_at", "RFC 3339", id="offset no colon"
    ),
    pytest.param(upsert(occurred_at="2016-12-31T23:59:60Z"), "occurred_at", "date", id="leap second"),
    pytest.param(upsert(occurred_at="1969-12-31T23:59:59Z"), "occurred_at", "1970", id="before 1970"),
    pytest.param(
        upsert(occurred_at="1970-01-01T00:59:59+01:00"), "occurred_at", "1970", id="before 1970 in UTC"
    ),
    pytest.param(
        upsert(occurred_at="0001-01-01T00:00:00+23:59"), "occurred_at", "1970", id="before year 1 in UTC"
    ),
    pytest.param(
        upsert(occurred_at="9999-12-31T23:59:59-23:59"), "occurred_at", "future", id="after 9999 in UTC"
    ),
    # source
    pytest.param(upsert(source=""), "source", "1 to 64", id="source empty"),
    pytest.param(upsert(source="x" * 65), "source", "1 to 64", id="source too long"),
    pytest.param(upsert(source="crm\n"), "source", "printable", id="source control char"),
    pytest.param(upsert(source=5), "source", "string", id="source a number"),
    # the envelope
    pytest.param(upsert(priority="high"), "priority", "not a known field", id="unknown field"),
    pytest.param(["not", "an", "object"], "", "object", id="not an object"),
]


@pytest.mark.parametrize(("data", "field", "reason"), INVALID)
def test_invalid_events_are_refused_naming_the_field(data: Any, field: str, reason: str) -> None:
    problems = refusal(data)

    assert field in problems, problems
    assert reason in problems[field]


def test_a_refusal_never_repeats_the_rejected_value() -> None:
    problems = refusal(upsert(msisdn="+47-secret-value", source="\x00secret-value"))

    assert "secret-value" not in json.dumps(problems)


def test_every_problem_of_an_event_is_reported_at_once() -> None:
    problems = refusal(upsert(msisdn="x", occurred_at="yesterday", registration={"route_type": "x"}))

    assert set(problems) == {"msisdn", "occurred_at", "registration.route_type", "registration.sip_uri"}


# --- batches ------------------------------------------------------------------------------------


def test_a_batch_names_each_bad_event_by_index_and_field() -> None:
    batch = [
        upsert("a"),
        upsert("b", msisdn="bad"),
        upsert("c"),
        with_registration(sip_uri="sip:x") | {"id": "d"},
    ]

    with pytest.raises(InvalidEventsError) as caught:
        parse_events(batch)

    assert [(e.field, e.message.split(":")[0]) for e in caught.value.errors] == [
        ("events.1.msisdn", "must be E.164"),
        ("events.3.registration.sip_uri", "must start with 'sips"),
    ]


def test_a_batch_refuses_a_repeated_id_naming_both_events() -> None:
    with pytest.raises(InvalidEventsError) as caught:
        parse_events([upsert("same"), upsert("other"), upsert("same", msisdn="bad")])

    fields = {e.field: e.message for e in caught.value.errors}
    assert fields["events.2.msisdn"].startswith("must be E.164")
    assert "events.2.id" not in fields  # an invalid event does not count as a repeat

    with pytest.raises(InvalidEventsError) as caught:
        parse_events([upsert("same"), upsert("other"), upsert("same")])
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("events.2.id", "repeats the id of events.0")
    ]


# --- internal events ----------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "event",
    [
        RefreshEvent(
            id="refresh:1",
            type=EventType.REGISTRATION_REFRESH,
            msisdn="+4799990000",
            occurred_at=NOW,
            registration={"sip_uri": "sips:pbx.example.com"},  # type: ignore[arg-type]
        ),
        ConsentedEvent(id="c:1", type=EventType.SUBSCRIBER_CONSENTED, msisdn="+4799990000", occurred_at=NOW),
        RevokeEvent(
            id="r:1", type=EventType.SUBSCRIBER_REVOKE, msisdn="+4799990000", occurred_at=NOW, source="api"
        ),
        *(
            parse_event(
                {
                    "id": f"{kind}:1",
                    "type": f"registration.{kind}",
                    "msisdn": "+4799990000",
                    "occurred_at": NOW.isoformat(),
                    "registration": {"sip_uri": "sips:pbx.example.com"},
                    "reason": "an operator's note",
                },
                allow_internal=True,
            )
            for kind in ("disable", "enable", "force_refresh", "suspend", "resume")
        ),
    ],
    ids=lambda event: event.type,
)
def test_internal_events_travel_the_queue_but_are_refused_from_outside(event: Any) -> None:
    wire = to_json(event)

    assert from_json(wire) == event
    assert parse_event(json.loads(wire), allow_internal=True) == event
    with pytest.raises(InvalidEventsError) as caught:
        parse_event(json.loads(wire))
    assert caught.value.errors[0].field == "type"
    assert "internal" in caught.value.errors[0].message


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_a_queued_event_whose_instant_has_no_utc_form_is_refused_naming_occurred_at(occurred_at: str) -> None:
    # Given a message a producer put straight on the queue, dated where UTC has no date
    body = to_json(parse_event(upsert())).replace("2025-06-01T12:00:00Z", occurred_at)
    assert occurred_at in body
    # Then the worker's reading refuses it as an event, naming the field (never an OverflowError)
    with pytest.raises(InvalidEventsError) as caught:
        from_json(body)
    assert [error.field for error in caught.value.errors] == ["occurred_at"]


def test_an_occurred_at_from_1970_in_utc_on_is_accepted() -> None:
    event = parse_event(upsert(occurred_at="1970-01-01T01:00:00+01:00"))

    assert event.occurred_at == datetime(1970, 1, 1, tzinfo=UTC)


def test_an_internal_event_built_in_code_must_carry_an_offset() -> None:
    with pytest.raises(ValueError, match="occurred_at"):
        RevokeEvent(
            id="r:1", type=EventType.SUBSCRIBER_REVOKE, msisdn="+4799990000", occurred_at=datetime(2025, 6, 1)
        )


# --- properties ---------------------------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)
msisdns = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)
labels = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=4).map(lambda parts: ".".join([*parts, "example"]))
ports = st.none() | st.integers(1, 65535)
prefixes = st.none() | st.from_regex(r"[0-9]{1,8}", fullmatch=True)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).flatmap(
    lambda moment: st.integers(-14 * 60, 14 * 60).map(
        lambda m: moment.astimezone(timezone(timedelta(minutes=m)))
    )
)


@st.composite
def valid_upserts(draw: st.DrawFn) -> dict[str, Any]:
    host, port = draw(hosts), draw(ports)
    registration: dict[str, Any] = {
        "route_type": draw(st.sampled_from(list(RouteType))).value.upper(),
        "sip_uri": f"sips:{host}" + (f":{port}" if port else ""),
    }
    for name in ("mobile_originating_prefix", "mobile_terminating_prefix"):
        prefix = draw(prefixes)
        if prefix is not None:
            registration[name] = prefix
    event = upsert(draw(ids), draw(msisdns), registration=registration)
    event["occurred_at"] = draw(instants).isoformat()
    if draw(st.booleans()):
        event["source"] = draw(
            st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=64)
        )
    return event


@given(valid_upserts())
def test_every_valid_upsert_survives_the_queue_unchanged(data: dict[str, Any]) -> None:
    event = parse_event(data)

    assert from_json(to_json(event)) == event
    assert isinstance(event, UpsertEvent)
    assert event.registration.route_type.value == data["registration"]["route_type"].lower()


@pytest.mark.parametrize("key", ["subscriber.consented", "registration.upsert"])
def test_an_unknown_field_named_like_an_event_type_is_refused_by_its_name(key: str) -> None:
    # Found by hypothesis: the union's type tags were dropped from every path, this name with them
    assert refusal({**upsert(), key: 1}) == {key: "is not a known field"}


@given(
    valid_upserts(), st.text(min_size=1, max_size=20).filter(lambda key: key not in UpsertEvent.model_fields)
)
def test_any_unknown_field_is_refused_by_name(data: dict[str, Any], key: str) -> None:
    problems = refusal({**data, key: 1})

    assert problems == {key: "is not a known field"}


@given(valid_upserts(), st.text(min_size=1, max_size=130))
def test_an_id_is_accepted_exactly_when_it_fits_the_id_rule(data: dict[str, Any], candidate: str) -> None:
    fits = 1 <= len(candidate) <= 128 and all(c.isascii() and (c.isalnum() or c in "._:-") for c in candidate)

    if fits:
        assert parse_event({**data, "id": candidate}).id == candidate
    else:
        assert set(refusal({**data, "id": candidate})) == {"id"}


@given(valid_upserts(), st.sampled_from(["id", "type", "msisdn", "registration", "occurred_at"]))
def test_each_required_field_is_named_when_missing(data: dict[str, Any], key: str) -> None:
    assert refusal(without(data, key))[key].startswith("is required")


@given(st.lists(valid_upserts(), min_size=1, max_size=12), st.data())
def test_one_bad_event_refuses_the_whole_batch_and_names_only_it(
    batch: list[dict[str, Any]], data: st.DataObject
) -> None:
    for index, event in enumerate(batch):
        event["id"] = f"e{index}"
    bad = data.draw(st.integers(0, len(batch) - 1))
    batch[bad] = {**batch[bad], "msisdn": "0"}

    with pytest.raises(InvalidEventsError) as caught:
        parse_events(batch)

    assert [error.field for error in caught.value.errors] == [f"events.{bad}.msisdn"]


def test_a_delete_names_the_registration_by_sip_uri_only() -> None:
    event = parse_event(delete(registration={"sip_uri": "SIPS:PBX.example.com"}))

    assert isinstance(event, DeleteEvent)
    assert event.registration.sip_uri == "sips:pbx.example.com"
    assert event.registration.route_type is None

"""A number's registrations that are not deleted are what the limit counts: a deleted one frees
its place, and upserting it again needs one like any new sip_uri."""

from __future__ import annotations

from datetime import timedelta

from sipreg.store.registrations import MAX_REGISTRATIONS_PER_NUMBER, RegistrationStatus
from tests.support.worker_events import MSISDN, T0, delete, message, upsert
from tests.support.worker_fakes import world


def pbx(index: int) -> str:
    return f"sips:pbx-{index:02}.example"


def test_a_deleted_registration_frees_its_place_and_needs_one_to_come_back() -> None:
    w = world()
    for index in range(MAX_REGISTRATIONS_PER_NUMBER):
        w.run(message(upsert(f"add-{index}", sip_uri=pbx(index), at=T0)))
    later = T0 + timedelta(minutes=1)
    w.run(message(delete("drop-0", sip_uri=pbx(0), at=later)))
    # The deleted one's place is taken by a new sip_uri
    w.run(message(upsert("add-new", sip_uri=pbx(99), at=later + timedelta(seconds=1))))
    assert w.journal.record(MSISDN, pbx(99)).status is RegistrationStatus.ACTIVE
    # Then the deleted one cannot come back: it would be one more
    report = w.run(message(upsert("add-0-again", sip_uri=pbx(0), at=later + timedelta(seconds=2))))
    assert report.outcomes == {"rejected": 1}
    assert w.journal.record(MSISDN, pbx(0)).status is RegistrationStatus.DELETED
    live = [r for r in w.journal.records.values() if r.status is not RegistrationStatus.DELETED]
    assert len(live) == MAX_REGISTRATIONS_PER_NUMBER

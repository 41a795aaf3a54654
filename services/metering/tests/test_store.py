"""The stored form of readings: exact round trips, day arithmetic equal to the domain's, the event's data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from ppa_contracts.metering import ReadingBatchAccepted, ReadingValue
from ppa_metering.domain.daily import day_start, jst_date
from ppa_metering.domain.readings import CHANNELS, Reading, row
from ppa_metering.ingest import batch_data
from ppa_metering.store import by_day, day_start_us, entry, jst_day, micros, reading

instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=9)),
                                                   timezone(timedelta(hours=-7))]))
kwh = st.decimals(min_value=0, max_value=Decimal("999999999999.999999"), places=6)
readings = st.builds(lambda c, at, k, m: Reading(c, at.astimezone(timezone.utc), k, m),
                     st.sampled_from(CHANNELS), instants, kwh, st.none() | st.just(Decimal("1000000000000")))


@settings(max_examples=300, deadline=None)
@given(instants)
def test_integer_day_arithmetic_equals_the_domains(at: datetime) -> None:
    us = micros(at)
    assert jst_day(us) == jst_date(at)
    assert day_start_us(jst_date(at)) == micros(day_start(jst_date(at)))
    assert day_start_us(jst_day(us)) <= us < day_start_us(jst_day(us) + timedelta(days=1))


@settings(max_examples=200, deadline=None)
@given(readings)
def test_a_reading_survives_its_stored_form_exactly(r: Reading) -> None:
    back = reading(entry(r))
    assert back == r and back.at.tzinfo is timezone.utc
    assert list(by_day([r])) == [jst_date(r.at)]


@settings(max_examples=100, deadline=None)
@given(st.lists(readings, max_size=20))
def test_the_event_data_is_what_the_payload_model_would_dump(rs: list[Reading]) -> None:
    model = ReadingBatchAccepted(serial_number="S1", readings=[
        ReadingValue(channel=r.channel, at=r.at, kwh=r.kwh, register_max=r.register_max) for r in rs])
    assert batch_data("S1", [row(r) for r in rs]) == model.model_dump(mode="json")
    assert ReadingBatchAccepted.model_validate(batch_data("S1", [row(r) for r in rs])) == model

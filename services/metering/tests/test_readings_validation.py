"""Reading batch validation: per-index reasons, duplicates counted, exact kWh."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from ppa_metering.domain.readings import (CHANNELS, MAX_BATCH, BatchTooLarge, InvalidReading, Reading, Rejection,
                                          parse_kwh, row, validate_batch, validate_rows)

NOW = datetime(2024, 1, 16, 3, 0, tzinfo=timezone.utc)  # 12:00 JST
JST = timezone(timedelta(hours=9))


def reading(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"at": "2024-01-16T00:30:00+09:00", "channel": "pv_generation",
                               "kwh": "1234.567"}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


def reason(raw: object) -> str:
    result = validate_batch([raw], NOW)
    assert result.accepted == ()
    [rejection] = result.rejected
    assert rejection.index == 0
    return rejection.reason


def test_accepts_a_valid_reading_as_exact_decimal_in_utc() -> None:
    result = validate_batch([reading()], NOW)
    assert result == validate_batch([reading()], NOW)
    [accepted] = result.accepted
    assert accepted == Reading("pv_generation", datetime(2024, 1, 16, 0, 30, tzinfo=JST), Decimal("1234.567"))
    assert accepted.at.tzinfo is timezone.utc
    assert str(accepted.kwh) == "1234.567"
    assert result.duplicates == 0 and result.rejected == ()


@pytest.mark.parametrize("channel", ["pv_generation", "grid_export", "grid_import", "battery_charge",
                                     "battery_discharge"])
def test_accepts_every_channel(channel: str) -> None:
    assert validate_batch([reading(channel=channel)], NOW).accepted[0].channel == channel


@pytest.mark.parametrize(("raw", "expected"), [
    (reading(at="2024-01-16T00:30:00"), "at must include a timezone offset"),
    (reading(at="2024-01-16"), "at must include a timezone offset"),
    (reading(at="16/01/2024 00:30"), "at must be an ISO-8601 date-time"),
    (reading(at=1705332600), "at must be an ISO-8601 date-time"),
    (reading(at=...), "at is required"),
    (reading(at="1970-01-01T00:00:00Z"), "at is before 2000-01-01"),
    (reading(at="2024-01-16T12:05:01+09:00"), "at is more than 5 minutes in the future"),
    (reading(channel="solar"), "channel must be one of pv_generation, grid_export"),
    (reading(channel=...), "channel is required"),
    (reading(kwh="-1.5"), "kwh must not be negative"),
    (reading(kwh=-2), "kwh must not be negative"),
    (reading(kwh="NaN"), "kwh must be a finite number"),
    (reading(kwh="Infinity"), "kwh must be a finite number"),
    (reading(kwh="-inf"), "kwh must be a finite number"),
    (reading(kwh=Decimal("NaN")), "kwh must be a finite number"),
    (reading(kwh="1e3"), "kwh must be a decimal string"),
    (reading(kwh="1E+999999"), "kwh must be a decimal string"),
    (reading(kwh="12.3456789"), "kwh must be a decimal string"),
    (reading(kwh="1234567890123"), "kwh must be a decimal string"),
    (reading(kwh=" 12.5"), "kwh must be a decimal string"),
    (reading(kwh="１２"), "kwh must be a decimal string"),  # full-width digits
    (reading(kwh=""), "kwh must be a decimal string"),
    (reading(kwh=True), "kwh must be a decimal string"),
    (reading(kwh=12.5), "not a JSON number with a fraction"),
    (reading(kwh=[1]), "kwh must be a decimal string"),
    (reading(kwh=10**13), "kwh must be a decimal string"),
    (reading(kwh=...), "kwh is required"),
    (reading(register_max="0"), "register_max must be greater than 0"),
    (reading(register_max="abc"), "register_max must be a decimal string"),
    (reading(kwh="100000", register_max="100000"), "kwh must be below register_max"),
    ("not an object", "reading must be a JSON object"),
    (None, "reading must be a JSON object"),
])
def test_rejects_bad_reading_with_a_clear_reason(raw: object, expected: str) -> None:
    assert expected in reason(raw)


def test_accepts_exactly_five_minutes_ahead() -> None:
    assert validate_batch([reading(at="2024-01-16T12:05:00+09:00")], NOW).accepted


@pytest.mark.parametrize(("value", "expected"), [
    (0, Decimal(0)), (1234, Decimal(1234)), ("0", Decimal(0)), ("0.000001", Decimal("0.000001")),
    (Decimal("12.5"), Decimal("12.5")), ("999999999999.999999", Decimal("999999999999.999999")),
])
def test_parses_kwh_exactly(value: object, expected: Decimal) -> None:
    parsed = parse_kwh(value, "kwh")
    assert parsed == expected and isinstance(parsed, Decimal)


def test_parse_kwh_raises_invalid_reading() -> None:
    with pytest.raises(InvalidReading, match="kwh must not be negative"):
        parse_kwh("-1", "kwh")


def test_accepts_register_max_and_a_z_timezone() -> None:
    [accepted] = validate_batch([reading(at="2024-01-15T15:30:00Z", kwh="99.9",
                                         register_max="100000")], NOW).accepted
    assert accepted.register_max == Decimal("100000")
    assert accepted.at == datetime(2024, 1, 16, 0, 30, tzinfo=JST)


def test_accepts_null_register_max_as_absent() -> None:
    assert validate_batch([reading(register_max=None)], NOW).accepted[0].register_max is None


def test_ignores_unknown_extra_fields() -> None:
    assert validate_batch([reading(quality="good")], NOW).accepted


def test_reports_each_bad_reading_by_index_and_keeps_the_good_ones() -> None:
    batch = [reading(), reading(channel="x"), reading(at="2024-01-16T01:00:00+09:00"),
             reading(kwh="-1", at="2024-01-16T01:30:00+09:00")]
    result = validate_batch(batch, NOW)
    assert [r.at for r in result.accepted] == [datetime(2024, 1, 16, 0, 30, tzinfo=JST),
                                                datetime(2024, 1, 16, 1, 0, tzinfo=JST)]
    assert [r.index for r in result.rejected] == [1, 3]
    assert all(isinstance(r, Rejection) and r.reason for r in result.rejected)


def test_counts_repeats_of_one_channel_and_instant_as_duplicates() -> None:
    same_instant_other_offset = reading(at="2024-01-15T15:30:00+00:00")
    batch = [reading(), reading(), same_instant_other_offset, reading(channel="grid_export")]
    result = validate_batch(batch, NOW)
    assert result.duplicates == 2
    assert result.rejected == ()
    assert [r.channel for r in result.accepted] == ["pv_generation", "grid_export"]


def test_keeps_the_greatest_value_of_a_repeated_instant_whatever_the_order() -> None:
    low, high = reading(kwh="10.000"), reading(kwh="10.500")
    for batch in ([low, high], [high, low]):
        result = validate_batch(batch, NOW)
        assert result.duplicates == 1
        assert [r.kwh for r in result.accepted] == [Decimal("10.500")]


def test_refuses_a_batch_over_the_limit_and_accepts_the_limit() -> None:
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    batch = [reading(at=(start + timedelta(minutes=i)).isoformat()) for i in range(MAX_BATCH)]
    assert len(validate_batch(batch, NOW).accepted) == MAX_BATCH
    with pytest.raises(BatchTooLarge):
        validate_batch([*batch, reading()], NOW)


def test_accepts_an_empty_batch() -> None:
    assert validate_batch([], NOW).accepted == ()


def test_requires_an_aware_now() -> None:
    with pytest.raises(ValueError):
        validate_batch([reading()], NOW.replace(tzinfo=None))


# Values each field may take, good (as likely as all the bad ones together) and bad, so that batches mix every
# path of both validators.
_AT = st.sampled_from(["2024-01-16T00:30:00+09:00", "2024-01-15T15:30:00Z", "2024-01-15T15:30:00+00:00",
                       "2024-01-16T00:30:00.250000+09:00", "2024-01-16T12:05:00+09:00"]) \
    | st.sampled_from(["2024-01-16T12:05:01+09:00", "2024-01-16T00:30:00", "1999-12-31T23:59:59Z", "yesterday", "",
                       1705300000, None, ["x"], ...]) \
    | st.datetimes(min_value=datetime(2023, 12, 1), max_value=datetime(2024, 1, 17),
                   timezones=st.sampled_from([timezone.utc, JST])).map(datetime.isoformat)
_CHANNEL = st.sampled_from(CHANNELS) | st.sampled_from(["pv", "", 3, None, ["pv_generation"], ...])
_KWH = st.sampled_from(["1234.567", "1234.5670", "0", "00", "0.000000", "0012.50", "007", "12"]) \
    | st.sampled_from(["-1", "1e3", " 12", "１２", "nan", "1234567890123", "1.1234567", 12, 0, -3, 12.5, True, None,
                       Decimal("7.25"), Decimal("NaN"), ["1"], ...]) \
    | st.decimals(min_value=0, max_value=Decimal("999999999999.999999"), places=3).map(str)
_MAX = st.sampled_from([..., None]) | st.sampled_from(["2000", "10", "1234.567", "0", "99999.9", 100, -5, "x"])


@st.composite
def _raw(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([[], "reading", 5, None]))
    return reading(at=draw(_AT), channel=draw(_CHANNEL), kwh=draw(_KWH), register_max=draw(_MAX))


@settings(max_examples=400, deadline=None)
@given(st.lists(_raw(), max_size=30))
def test_rows_are_the_readings_validate_batch_accepts(batch: list[object]) -> None:
    readings, rows = validate_batch(batch, NOW), validate_rows(batch, NOW)
    assert rows.rows == tuple(row(r) for r in readings.accepted)
    assert (rows.duplicates, rows.rejected) == (readings.duplicates, readings.rejected)


def test_rows_keep_the_decimal_text_and_the_utc_instant() -> None:
    [r] = validate_rows([reading(kwh="0012.50", at="2024-01-16T00:30:00.25+09:00")], NOW).rows
    assert (r.kwh, r.at, r.register_max) == ("12.50", "2024-01-15T15:30:00.250000Z", None)
    with pytest.raises(BatchTooLarge):
        validate_rows([reading()] * (MAX_BATCH + 1), NOW)

"""買電単価 segments must cover every day and time exactly once; gaps and overlaps are named."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppa_contracts.owner import BuyPriceSegment, DayType
from ppa_identity.domain.owner import InvalidOwnerForm, prices_from_form
from ppa_identity.domain.prices import DAY, coverage_errors, covered_minutes, hhmm, parse_price

W, H, A = DayType.WEEKDAY, DayType.HOLIDAY, DayType.ALL


def seg(day_type: DayType, start: str, end: str, price: str = "30") -> BuyPriceSegment:
    return BuyPriceSegment(day_type=day_type, start=start, end=end, price=Decimal(price))


def test_one_whole_day_segment_covers_everything():
    assert coverage_errors([seg(A, "00:00", "00:00")]) == []


def test_no_segment_at_all_is_allowed():
    assert coverage_errors([]) == []


def test_weekday_and_holiday_plans_together_cover_everything():
    segments = [seg(W, "07:00", "23:00", "35"), seg(W, "23:00", "07:00", "20"), seg(H, "00:00", "00:00", "28")]
    assert coverage_errors(segments) == []


def test_a_weekday_gap_is_named_by_day_type_and_time_range():
    segments = [seg(W, "09:00", "07:00"), seg(H, "00:00", "00:00")]
    assert coverage_errors(segments) == ["平日 07:00〜09:00 が未設定です。"]


def test_a_gap_on_every_day_is_named_all_days():
    assert coverage_errors([seg(A, "00:00", "22:00")]) == ["全日 22:00〜24:00 が未設定です。"]


def test_an_overlap_is_named():
    segments = [seg(A, "00:00", "00:00"), seg(H, "10:00", "15:00")]
    assert coverage_errors(segments) == ["土日祝 10:00〜15:00 が重複しています。"]


def test_a_gap_through_midnight_is_one_range():
    segments = [seg(A, "06:00", "22:00")]
    assert coverage_errors(segments) == ["全日 22:00〜06:00 が未設定です。"]


def test_gaps_and_overlaps_are_all_reported():
    segments = [seg(A, "00:00", "12:00"), seg(W, "11:00", "20:00"), seg(H, "13:00", "00:00")]
    assert coverage_errors(segments) == [
        "土日祝 12:00〜13:00 が未設定です。",
        "平日 20:00〜24:00 が未設定です。",
        "平日 11:00〜12:00 が重複しています。",
    ]


@pytest.mark.parametrize(("text", "value"), [("0", "0"), ("31.5", "31.5"), ("12.34", "12.34"), ("２５．１", "25.1"),
                                             ("1,234", "1234")])
def test_prices_accept_decimals_with_up_to_two_places(text, value):
    assert parse_price(text, "売電単価") == (Decimal(value), None)


@pytest.mark.parametrize("text", ["-1", "1.234", "abc", "1e3", "", " . ", "12.", "NaN", "10000"])
def test_prices_refuse_negatives_extra_places_and_non_numbers(text):
    value, message = parse_price(text, "売電単価")
    assert value is None and message.startswith("売電単価は")


def test_the_form_uses_rows_with_a_price_and_reports_coverage():
    errors: dict[str, str] = {}
    rows = [{"day_type": "weekday", "start": "09:00", "end": "07:00", "price": "30"},
            {"day_type": "holiday", "start": "00:00", "end": "00:00", "price": "25.5"},
            {"day_type": "all", "start": "00:00", "end": "00:00", "price": ""}]
    prices = prices_from_form("8.5", rows, errors)
    assert errors == {"buy": "平日 07:00〜09:00 が未設定です。"}
    assert prices.sell_price == Decimal("8.5") and len(prices.buy_segments) == 2


def test_the_form_names_the_row_of_a_bad_price_or_time():
    errors: dict[str, str] = {}
    prices_from_form("-3", [{"day_type": "all", "start": "00:00", "end": "00:00", "price": "1.999"},
                            {"day_type": "sometimes", "start": "00:00", "end": "00:00", "price": "1"},
                            {"day_type": "all", "start": "25:00", "end": "00:00", "price": "1"}], errors)
    assert set(errors) == {"sell_price", "buy_0", "buy_1", "buy_2"}
    assert "区分1" in errors["buy_0"] and "区分2" in errors["buy_1"] and "区分3" in errors["buy_2"]


def test_a_refused_profile_form_lists_the_segment_problem():
    values = {"family_name": "日見", "given_name": "太郎", "family_name_kana": "ニチコン", "given_name_kana": "タロウ",
              "postal_code": "1030026", "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町",
              "phone": "0336667945", "email": "taro@example.jp", "info_opt_in": "no"}
    from ppa_identity.domain.owner import profile_from_form

    with pytest.raises(InvalidOwnerForm) as exc:
        profile_from_form(values, [], "", [{"day_type": "all", "start": "00:00", "end": "12:00", "price": "30"}])
    assert exc.value.errors == {"buy": "全日 12:00〜24:00 が未設定です。"}


# --- properties -----------------------------------------------------------------------------------

cuts = st.lists(st.integers(min_value=0, max_value=DAY // 30 - 1).map(lambda n: n * 30), min_size=1, max_size=5,
                unique=True).map(sorted)


def partition(points: list[int], day_type: DayType) -> list[BuyPriceSegment]:
    """Segments from each cut point to the next (the last one wraps past midnight to the first)."""
    return [seg(day_type, hhmm(a), hhmm(points[(i + 1) % len(points)])) for i, a in enumerate(points)]


def named_range(segment: BuyPriceSegment) -> str:
    """How a message writes the segment's range: a whole day is 00:00〜24:00, a midnight end is 24:00."""
    if segment.start == segment.end:
        return "00:00〜24:00"
    return f"{segment.start}〜{'24:00' if segment.end == '00:00' else segment.end}"


@given(cuts)
def test_any_partition_of_the_day_for_all_days_is_accepted(points):
    assert coverage_errors(partition(points, A)) == []


@given(st.lists(st.integers(0, 47).map(lambda n: n * 30), min_size=1, max_size=2, unique=True).map(sorted),
       st.lists(st.integers(0, 47).map(lambda n: n * 30), min_size=1, max_size=3, unique=True).map(sorted))
def test_separate_weekday_and_holiday_partitions_are_accepted(weekday, holiday):
    assert coverage_errors(partition(weekday, W) + partition(holiday, H)) == []


@given(cuts.filter(lambda p: len(p) >= 2), st.data())
def test_leaving_out_one_segment_names_exactly_its_range_as_missing(points, data):
    segments = partition(points, A)
    dropped = segments.pop(data.draw(st.integers(0, len(segments) - 1)))
    assert coverage_errors(segments) == [f"全日 {named_range(dropped)} が未設定です。"]


@given(cuts.filter(lambda p: len(p) < 5), st.data())
def test_adding_any_segment_to_a_full_day_is_an_overlap_of_its_range(points, data):
    extra = data.draw(st.sampled_from(partition(points, A)))
    day_type = data.draw(st.sampled_from([W, H]))
    errors = coverage_errors([*partition(points, A), seg(day_type, extra.start, extra.end)])
    label = "平日" if day_type == W else "土日祝"
    assert errors == [f"{label} {named_range(extra)} が重複しています。"]


@given(st.lists(st.tuples(st.sampled_from([A, W, H]), st.integers(0, 47), st.integers(0, 47)), min_size=1,
                max_size=5))
def test_accepted_exactly_when_every_minute_is_covered_once_for_both_day_kinds(raw):
    segments = [seg(d, hhmm(a * 30), hhmm(b * 30)) for d, a, b in raw]
    weekday, holiday = [0] * DAY, [0] * DAY
    for s in segments:
        for minute in covered_minutes(s):
            if s.day_type in (A, W):
                weekday[minute] += 1
            if s.day_type in (A, H):
                holiday[minute] += 1
    exact = all(c == 1 for c in weekday + holiday)
    assert (coverage_errors(segments) == []) == exact

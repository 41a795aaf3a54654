"""The import file's rules: encodings found by strict decoding, the export's header, every row judged alone."""

from __future__ import annotations

import pytest

from ppa_billing.domain.customer_import import (CHANGED, ERROR, HEADER, NEW, UNCHANGED, ImportFileError, decode, judge,
                                                parse, stored_form)
from ppa_billing.domain.customer import new_customer

TEXT = ",".join(HEADER) + "\r\n1120230057,23370657,顧客0167,コキヤク0167,2023/12/16,2037/12/15,980,16.00,27.00,a@example.jp\r\n"


@pytest.mark.parametrize("data", [TEXT.encode("utf-8"), ("\ufeff" + TEXT).encode("utf-8"), TEXT.encode("cp932")])
def test_reads_utf8_with_or_without_bom_and_shift_jis(data):
    assert decode(data) == TEXT
    [row] = parse(data)
    assert row.values["name"] == "顧客0167" and row.line == 2


def test_refuses_what_is_neither_utf8_nor_shift_jis():
    with pytest.raises(ImportFileError, match="文字コード"):
        decode(b"\x80\xff\xfe")
    with pytest.raises(ImportFileError, match="UTF-8"):
        decode(b"\xef\xbb\xbf\x82\xa0")  # a BOM before Shift_JIS bytes: not guessed


def test_refuses_another_header_and_an_empty_file():
    with pytest.raises(ImportFileError, match="見出し"):
        parse("請求番号,氏名\r\n1,2\r\n".encode())
    with pytest.raises(ImportFileError, match="空"):
        parse(b"  \r\n")


def test_takes_the_exports_quote_off_a_formula_like_cell_and_skips_blank_lines():
    data = (",".join(HEADER) + "\r\n1120230057,S1,'=SUM(1),,,,0,1,1,\r\n,,,,,,,,,\r\n").encode()
    [row] = parse(data)
    assert row.values["name"] == "=SUM(1)"


def test_judges_each_row_new_changed_unchanged_or_error_with_its_field():
    stored = new_customer(customer_number="1120230057", serial_number="23370657", name="顧客0167",
                          name_kana="コキヤク0167", contract_start="2023-12-16", contract_end="2037-12-15",
                          base_fee="980", sell_unit_price="16.00", usage_unit_price="27.00", email="a@example.jp")
    doc = {**stored_form(stored), "customer_number": "1120230057", "notes": "屋根南向き"}
    data = (TEXT + "1120230058,23370657,顧客0168,,,,0,16.00,27.00,\r\n"  # the serial of the row above
            "1120230059,S59,顧客0169,,,,0,16,27.5,\r\n"
            "1120230060,S60,,,,,abc,16,27,\r\n"
            "1120230061,S61,顧客0171,,,,0,16,27\r\n").encode()
    rows = parse(data)
    judge(rows, {"1120230057": doc}, {"23370657": "1120230057"})
    assert [r.status for r in rows] == [UNCHANGED, ERROR, NEW, ERROR, ERROR]
    assert rows[1].messages == ["製造番号: 2行目と同じ製造番号です。"]
    assert set(rows[3].errors) == {"氏名", "基本料金(円)"}  # every bad field of the row, not the first only
    assert rows[4].messages == ["列の数が9です（10列必要です）。"]
    assert str(rows[2].customer.usage_unit_price) == "27.50"

    renamed = parse(TEXT.replace("顧客0167", "顧客0167改").encode())
    judge(renamed, {"1120230057": doc}, {"23370657": "1120230057"})
    assert renamed[0].status == CHANGED and renamed[0].customer.notes == "屋根南向き"  # 備考 is not in the file


def test_a_serial_held_by_another_agency_is_an_error():
    rows = parse(TEXT.encode())
    judge(rows, {}, {"23370657": ""})
    assert rows[0].messages == ["製造番号: この製造番号は既に登録されています。"]

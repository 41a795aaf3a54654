"""Messages are proper RFC 5322 with UTF-8 Japanese, and the Maildir adapter writes them atomically."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

from ppa_notify.mailer import MaildirMailer, build_message, message_id_header


def sample(message_id: str = "0123abcd") -> EmailMessage:
    return build_message(message_id=message_id, sender="no-reply@ppa.example", sender_name="家庭用PPAポータル",
                         recipient="taro@example.jp", subject="[家庭用PPAポータル]ログイン連携が拒否されました。",
                         body="taro@example.jp 様\n\nこちらは家庭用PPAポータルです。\n")


def test_headers_are_ascii_on_the_wire_and_decode_back_to_japanese():
    raw = sample().as_bytes()
    head, _, _ = raw.partition(b"\n\n")
    head.decode("ascii")  # encoded words only: no raw UTF-8 in any header
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "[家庭用PPAポータル]ログイン連携が拒否されました。"
    assert parsed["From"].addresses[0].display_name == "家庭用PPAポータル"
    assert parsed["From"].addresses[0].addr_spec == "no-reply@ppa.example"
    assert parsed["To"] == "taro@example.jp"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_charset() == "utf-8"
    assert parsed.get_content() == "taro@example.jp 様\n\nこちらは家庭用PPAポータルです。\n"


def test_message_id_comes_from_the_request_so_a_resend_is_recognisable():
    assert sample("m-1")["Message-ID"] == sample("m-1")["Message-ID"] == "<m-1@ppa.example>"
    odd = message_id_header("signup <x>@y", "no-reply@ppa.example")
    assert odd == message_id_header("signup <x>@y", "no-reply@ppa.example")
    assert odd.startswith("<") and odd.count("@") == 1 and " " not in odd


async def test_maildir_adapter_writes_a_parseable_file_into_new(tmp_path):
    await MaildirMailer(tmp_path / "data" / "maildir").send(sample())
    files = list((tmp_path / "data" / "maildir" / "new").iterdir())
    assert len(files) == 1
    assert list((tmp_path / "data" / "maildir" / "tmp").iterdir()) == []
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "[家庭用PPAポータル]ログイン連携が拒否されました。"
    assert "こちらは家庭用PPAポータルです。" in parsed.get_content()


def test_attachments_make_a_multipart_message_with_the_text_first():
    pdf = b"%PDF-1.4 invoice"
    msg = build_message(message_id="invoice-1", sender="no-reply@ppa.example", sender_name="家庭用PPAポータル",
                        recipient="taro@example.jp", subject="請求書", body="本文\n",
                        attachments=[("invoice_24011120230030_r1.pdf", "application/pdf", pdf)])
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    assert parsed.get_body(("plain",)).get_content() == "本文\n"
    [part] = list(parsed.iter_attachments())
    assert (part.get_content_type(), part.get_filename(), part.get_content()) == (
        "application/pdf", "invoice_24011120230030_r1.pdf", pdf)

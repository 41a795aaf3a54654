"""Notify's own settings (the SMTP server itself is in the platform settings: SMTP_HOST, SMTP_PORT)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SIGNATURE = """家庭用PPAポータル
【お問い合わせ部署名】 家庭用PPAポータル運営事務局
【受付時間】 9:00~17:00 (土、日、祝日、休業日を除く)
【メールアドレス】 support@ppa.example"""


class MailSettings(BaseSettings):
    """Sender, site name and signature of every mail, read from the environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    mail_from: str = Field("no-reply@ppa.example", validation_alias=AliasChoices("PPA_MAIL_FROM"))
    site_name: str = Field("家庭用PPAポータル", validation_alias=AliasChoices("PPA_SITE_NAME"))
    signature: str = Field(DEFAULT_SIGNATURE, validation_alias=AliasChoices("PPA_MAIL_SIGNATURE"))
    smtp_timeout: float = Field(30.0, validation_alias=AliasChoices("SMTP_TIMEOUT"))

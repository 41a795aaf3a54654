"""Linking's own settings, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LinkingSettings(BaseSettings):
    """How long a proxy-login session lives, how often the worker records the expiry of sessions left open, and
    how many users a page of the user list shows."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    proxy_session_seconds: int = Field(3600, ge=60, validation_alias=AliasChoices("PPA_PROXY_SESSION_SECONDS"))
    proxy_sweep_seconds: float = Field(30, gt=0, le=3600, validation_alias=AliasChoices("PPA_PROXY_SWEEP_SECONDS"))
    users_page_size: int = Field(20, ge=1, le=200, validation_alias=AliasChoices("PPA_USERS_PAGE_SIZE"))

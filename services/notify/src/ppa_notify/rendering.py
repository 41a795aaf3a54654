"""E-mail templates: one file per template in `templates/`, rendered with Jinja2.

File format: the first line is the subject, then an empty line, then the plain-text body, like a
message without its other headers. Values are not escaped (plain text); `StrictUndefined` makes a
missing context key fail the render instead of sending a mail with a hole in it. Every template also
sees `site_name`, `public_url` and `signature` (from `Brand`) and the `jst` filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import jinja2

from ppa_notify.settings import DEFAULT_SIGNATURE

JST = timezone(timedelta(hours=9), "JST")


class RenderError(Exception):
    """A template is unknown, needs a context key the request lacks, or is malformed."""


@dataclass(frozen=True)
class Brand:
    """What every mail says about the site that sends it."""

    site_name: str = "家庭用PPAポータル"
    public_url: str = "http://127.0.0.1:8000"
    signature: str = DEFAULT_SIGNATURE


def jst(value: str | datetime) -> str:
    """An ISO timestamp (or datetime) as Japan time, e.g. 2024年5月20日 15:00; naive means UTC."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(JST)
    return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"


@lru_cache(maxsize=8)
def environment(brand: Brand) -> jinja2.Environment:
    """The Jinja2 environment of one brand (templates load once, then stay cached)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ppa_notify", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["jst"] = jst
    env.globals.update(site_name=brand.site_name, public_url=brand.public_url.rstrip("/"),
                       signature=brand.signature.strip("\n"))
    return env


def template_names() -> list[str]:
    """Every template notify has, by name."""
    return sorted(n.removesuffix(".txt") for n in environment(Brand()).list_templates(extensions=["txt"]))


def render(template: str, context: Mapping[str, Any], brand: Brand = Brand()) -> tuple[str, str]:
    """Render a template into (subject, body); raises RenderError, never half a mail.

    The error names the template and the missing key but never a context value (they may be secrets).
    """
    env = environment(brand)
    try:
        text = env.get_template(f"{template}.txt").render(**context)
    except jinja2.TemplateNotFound:
        raise RenderError(f"unknown template {template!r}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {template!r}: {exc}") from None
    except Exception as exc:  # a filter fed a bad value: name the failure, not the value
        raise RenderError(f"template {template!r}: {type(exc).__name__}") from None
    subject, _, body = text.partition("\n")
    subject = subject.strip()
    if not subject:
        raise RenderError(f"template {template!r}: the first line (subject) is empty")
    return subject, body.lstrip("\n").rstrip() + "\n"

"""How the portal writes numbers, sizes, durations and times for people: the Jinja filters
every template uses (registered once, by `register`), with the full value on hover.

The rules (static/format.js applies the same ones to what the pages update live, and a
browser test checks that both give the same text):

- **numbers** (`num`): integers with thousands separators (1,234,567); other numbers to
  four significant digits (0.912345678 -> 0.9123, 12.3456 -> 12.35, 1234.5678 -> 1,235),
  trailing zeros dropped; below 0.0001 or from 10^15 on, as 1.235e-5 / 1.235e15. Halves
  round away from zero (as JavaScript does). Anything else (text, booleans) is shown as it is.
- **counts** (`count`): separators below a million, then 1.23M, 12.3B, 1.23T.
- **sizes** (`size`): bytes in decimal units, three significant digits: 512 B, 12.3 kB,
  12.3 MB, 1.23 GB (1 kB = 1,000 bytes, as Jinja's filesizeformat and most file managers).
- **durations** (`seconds`, `duration(start, end)`): 0.42 s, 12.3 s, 1 min 12 s,
  2 h 3 min, 3 d 4 h.
- **times** (`when`): `<time datetime="2026-12-08T01:02:03Z">2026-12-08 01:02:03 UTC</time>`;
  app.js rewrites the text to the browser's zone with its name ("2026-12-08 02:02:03 CET"),
  keeping the UTC text in `title`.

The `*_text` functions give the plain text; the filters wrap it in an element whose `title`
holds the full value. Nothing here reads the store or the request.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from markupsafe import Markup, escape

__all__ = [
    "count_text",
    "number_text",
    "register",
    "seconds_text",
    "size_text",
    "utc_iso",
    "utc_text",
]

_SCIENTIFIC_FROM = 1e15
_SCIENTIFIC_BELOW = 1e-4


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fixed(value: float | Decimal, decimals: int, separators: bool = True) -> str:
    """`value` to `decimals` places, halves away from zero, trailing zeros dropped."""
    exact = Decimal(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = f"{exact:,f}" if separators else f"{exact:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _digits(value: float) -> int:
    """How many digits `value` has before its decimal point (0.5: 0, 0.05: -1)."""
    return math.floor(math.log10(abs(value))) + 1


def _scientific(value: float) -> str:
    """1.235e15, 1.235e-5: four significant digits, halves away from zero (as JavaScript's
    toExponential(3))."""
    exponent = _digits(value) - 1
    mantissa = _fixed(Decimal(value).scaleb(-exponent), 3, separators=False)
    if abs(Decimal(mantissa)) >= 10:  # 9.9995e3 rounds up to 1e4
        exponent += 1
        mantissa = _fixed(Decimal(value).scaleb(-exponent), 3, separators=False)
    return f"{mantissa}e{exponent}"


def number_text(value: Any) -> str:
    """A number for people (see the module's rules); other values as `str` gives them."""
    if not _is_number(value):
        return "" if value is None else str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    if abs(value) >= _SCIENTIFIC_FROM or abs(value) < _SCIENTIFIC_BELOW:
        return _scientific(float(value))
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return _fixed(value, max(0, 4 - _digits(value)))


def _three_digits(value: float) -> str:
    return _fixed(value, max(0, 3 - _digits(value)) if value else 0, separators=False)


def count_text(value: Any) -> str:
    """A count: 123,456; from a million on 1.23M, 12.3B, 1.23T."""
    if not _is_number(value):
        return "" if value is None else str(value)
    if abs(value) < 1e6:
        return number_text(value)
    for unit, letter in ((1e6, "M"), (1e9, "B"), (1e12, "T")):
        text = _three_digits(value / unit)
        if abs(float(text)) < 1000 or letter == "T":
            return text + letter
    raise AssertionError("unreachable")


def size_text(value: Any) -> str:
    """A size in bytes: 512 B, 12.3 kB, 12.3 MB, 1.23 GB (decimal units)."""
    if not _is_number(value):
        return "" if value is None else str(value)
    if abs(value) < 1000:
        return f"{int(value)} B"
    for unit, name in ((1e3, "kB"), (1e6, "MB"), (1e9, "GB"), (1e12, "TB"), (1e15, "PB")):
        text = _three_digits(value / unit)
        if abs(float(text)) < 1000 or name == "PB":
            return f"{text} {name}"
    raise AssertionError("unreachable")


def seconds_text(value: Any) -> str:
    """A duration: 0.42 s, 12.3 s, 1 min 12 s, 2 h 3 min, 3 d 4 h ("" for None)."""
    if not _is_number(value) or math.isnan(value):
        return ""
    seconds = max(0.0, float(value))
    if seconds < 1:
        return _fixed(seconds, 2) + " s"
    if seconds < 60:
        return _fixed(seconds, 1) + " s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:  # the store's times are UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def utc_iso(value: datetime | str) -> str:
    """The instant as ISO 8601 in UTC to the second: 2026-12-08T01:02:03Z."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(value: datetime | str) -> str:
    """The instant as people read it, saying its zone: 2026-12-08 01:02:03 UTC."""
    return _utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- the filters ---------------------------------------------------------------------------
def _titled(text: str, title: str, css: str) -> Markup:
    if text == title:  # nothing more to show on hover
        return escape(text)
    return Markup('<span class="{}" title="{}">{}</span>').format(css, title, text)


def _num(value: Any) -> Markup:
    if not _is_number(value):
        return escape("" if value is None else value)
    return _titled(number_text(value), repr(value) if isinstance(value, float) else str(value), "n")


def _count(value: Any) -> Markup:
    if not _is_number(value):
        return escape("" if value is None else value)
    return _titled(count_text(value), f"{value:,}", "n")


def _size(value: Any) -> Markup:
    if not _is_number(value):
        return escape("" if value is None else value)
    return _titled(size_text(value), f"{int(value):,} bytes", "n")


def _seconds(value: Any) -> Markup:
    if not _is_number(value):
        return Markup("")
    return _titled(seconds_text(value), f"{float(value):,.3f} s", "n")


def _duration(start: datetime | None, end: datetime | None = None) -> Markup:
    """The time from `start` to `end` (to now while it goes on); empty before it started."""
    if start is None:
        return Markup("")
    stop = _utc(end) if end is not None else datetime.now(timezone.utc)
    return _seconds((stop - _utc(start)).total_seconds())


def _when(value: datetime | str | None) -> Markup:
    """A `<time>` in UTC, named so; app.js shows it in the browser's zone."""
    if value is None or value == "":
        return Markup("")
    try:
        text = utc_text(value)
    except ValueError:  # not a time after all: show it as it is
        return escape(value)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(utc_iso(value), text, text)


def register(filters: dict[str, Any]) -> None:
    """Add the filters to a Jinja environment's `filters`."""
    filters.update(
        num=_num, count=_count, size=_size, seconds=_seconds, duration=_duration, when=_when
    )

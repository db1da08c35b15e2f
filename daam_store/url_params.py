"""Page state in the URL's query string: reading a widget's value back from it, robustly.

A URL may be old, hand-edited or shared from a store that holds other rows: a value that is not among a
widget's options is dropped (the widget keeps its default), never an error. Values travel as the query
string's repeated keys (`?models=1&models=3`), so no value needs escaping or splitting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TypeVar

T = TypeVar("T")


def pick_one(raw: Sequence[str], options: Sequence[T], encode: Callable[[T], str] = str) -> T | None:
    """The option whose encoded form is the URL's (first) value, or None."""
    by_text = {encode(option): option for option in options}
    return by_text.get(raw[0]) if raw else None


def pick_many(raw: Sequence[str], options: Sequence[T], encode: Callable[[T], str] = str) -> list[T]:
    """The options the URL names, in the URL's order, unknown ones and repeats dropped."""
    by_text = {encode(option): option for option in options}
    return [by_text[text] for text in dict.fromkeys(raw) if text in by_text]


def pick_int(raw: Sequence[str], low: int, high: int) -> int | None:
    """A whole number within [low, high] (a page number), or None."""
    text = raw[0].strip() if raw else ""
    if not (text.isascii() and text.isdecimal()):  # "²".isdigit() holds, but int("²") fails
        return None
    number = int(text)
    return number if low <= number <= high else None


def pick_days(raw: Sequence[str]) -> tuple[date, ...] | None:
    """One or two ISO days (a date range's ends), or None when any is not a day."""
    try:
        days = tuple(date.fromisoformat(text) for text in raw)
    except ValueError:
        return None
    return days if 1 <= len(days) <= 2 and days == tuple(sorted(days)) else None


MAX_ID = 2**31 - 1  # the id columns are 32-bit integers


def pick_ids(raw: Sequence[str], limit: int) -> list[int]:
    """Row ids (job ids): whole numbers from 1 to MAX_ID, in the URL's order, at most `limit`; anything else
    dropped (a 5,000-digit number is not even parsed)."""
    texts = [text for text in raw[: limit * 4] if text.isascii() and text.isdecimal() and len(text) <= 10]
    ids = [number for number in map(int, texts) if 1 <= number <= MAX_ID]
    return list(dict.fromkeys(ids))[:limit]

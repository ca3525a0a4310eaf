"""``key=value`` command-line arguments, shared by the data-preparation commands.

A command declares a parser per key (a callable from the raw text to a value, raising
:class:`UsageError` on bad text) and calls :func:`parse_key_values`::

    values = parse_key_values(argv, {"output": Path, "n": integer(1), "overwrite": boolean}, required=["output"])

Each argument is ``key=value``, optionally with a leading ``--`` (``--n=4``). Unknown keys, arguments
without ``=``, bad values and missing required keys all raise :class:`UsageError`, whose message is
meant to be printed to the user (commands exit with status 2 on it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class UsageError(ValueError):
    """Bad command-line arguments."""


def integer(minimum: int) -> Callable[[str], int]:
    """A parser of integers that are at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as error:
            raise UsageError(f"expected an integer, got {text!r}") from error
        if value < minimum:
            raise UsageError(f"expected an integer of at least {minimum}, got {value}")
        return value

    return parse


def boolean(text: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no`` or ``on/off`` (any case) -> ``bool``."""
    lowered = text.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise UsageError(f"expected true or false, got {text!r}")


def choice(*options: str) -> Callable[[str], str]:
    """A parser that accepts exactly one of ``options`` (case-sensitive) and returns it."""

    def parse(text: str) -> str:
        if text not in options:
            raise UsageError(f"expected one of {list(options)}, got {text!r}")
        return text

    return parse


def parse_key_values(
    argv: Sequence[str], parsers: Mapping[str, Callable[[str], Any]], required: Sequence[str] = ()
) -> dict[str, Any]:
    """``["key=value", "--key=value", ...]`` -> ``{key: parsers[key](value)}``.

    Raises :class:`UsageError` for an argument without ``=`` or with a key not in ``parsers``, for a value
    its parser rejects (the message is prefixed with ``key: ``) and for keys of ``required`` not given.
    A key given twice keeps its last value.
    """
    values: dict[str, Any] = {}
    for argument in argv:
        name, equals, text = argument.removeprefix("--").partition("=")
        if not equals or name not in parsers:
            raise UsageError(f"unknown argument {argument!r}; expected key=value with key in {sorted(parsers)}")
        try:
            values[name] = parsers[name](text)
        except UsageError as error:
            raise UsageError(f"{name}: {error}") from error
    missing = [name for name in required if name not in values]
    if missing:
        raise UsageError(f"missing {', '.join(f'{name}=...' for name in missing)}")
    return values

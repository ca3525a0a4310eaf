"""The shared ``key=value`` command-line parser (fastganfit.io.cli_args)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastganfit.io.cli_args import UsageError, boolean, choice, integer, parse_key_values

PARSERS = {"output": Path, "n": integer(1), "overwrite": boolean, "mode": choice("a", "b")}


def test_parses_good_values_and_a_leading_double_dash() -> None:
    values = parse_key_values(["output=out/dir", "--n=3", "overwrite=YES", "mode=b"], PARSERS, required=["output"])
    assert values == {"output": Path("out/dir"), "n": 3, "overwrite": True, "mode": "b"}
    assert parse_key_values([], PARSERS) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("False", False), ("1", True), ("0", False), ("yes", True), ("NO", False)],
)
def test_boolean_words(text: str, expected: bool) -> None:
    assert boolean(text) is expected


@pytest.mark.parametrize("argument", ["colour=red", "output", "--n"])
def test_rejects_unknown_keys_and_missing_equals(argument: str) -> None:
    expected = f"unknown argument {argument!r}; expected key=value with key in ['mode', 'n', 'output', 'overwrite']"
    with pytest.raises(UsageError) as caught:
        parse_key_values([argument], PARSERS)
    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("n=many", "n: expected an integer, got 'many'"),
        ("n=0", "n: expected an integer of at least 1, got 0"),
        ("overwrite=maybe", "overwrite: expected true or false, got 'maybe'"),
        ("mode=c", "mode: expected one of ['a', 'b'], got 'c'"),
    ],
)
def test_prefixes_value_errors_with_the_key(argument: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_key_values([argument], PARSERS)
    assert str(caught.value) == message


def test_reports_missing_required_keys() -> None:
    with pytest.raises(UsageError) as caught:
        parse_key_values(["n=2"], PARSERS, required=["output", "n", "mode"])
    assert str(caught.value) == "missing output=..., mode=..."


def test_usage_error_is_a_value_error_and_shared_by_the_commands() -> None:
    from fastganfit.data import prepare, synthetic, uv_shards

    assert issubclass(UsageError, ValueError)
    assert prepare.UsageError is synthetic.UsageError is uv_shards.UsageError is UsageError

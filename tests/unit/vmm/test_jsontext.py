"""`vmm.jsontext` against `json`: the same values, the same errors at the same places."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmm import jsontext

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)
JSON_PIECES = st.sampled_from(['{', '}', '[', ']', ',', ':', '"a"', '"\\u00e9"', '"\\x"', '1', '-0.5e3', '01', 'true', 'nul',
                               'NaN', '-Infinity', ' ', '\n', '\t', '\ufeff', '"\x01"', '"\\ud800"'])


def _outcome(loads, text: str) -> tuple[object, ...]:
    try:
        value = loads(text)
    except ValueError as error:
        return ("error", error.msg, error.lineno, error.colno, error.pos)
    return ("value", json.dumps(value, sort_keys=False))  # NaN-safe, order-preserving comparison


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from([None, 2]), st.text(alphabet=" \t\n\r", max_size=3))
def test_valid_documents_read_as_json_reads_them(value: object, indent: int | None, padding: str) -> None:
    text = padding + json.dumps(value, indent=indent, ensure_ascii=False) + padding
    assert _outcome(jsontext.loads, text) == _outcome(json.loads, text)


@settings(max_examples=500, deadline=None)
@given(st.lists(JSON_PIECES, max_size=12).map("".join))
def test_any_text_gives_the_same_value_or_the_same_error_as_json(text: str) -> None:
    assert _outcome(jsontext.loads, text) == _outcome(json.loads, text)


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("", "Expecting value", 1, 1),
        ('{\n  "a": 1,\n}', "Expecting property name enclosed in double quotes", 3, 1),
        ("[1] [2]", "Extra data", 1, 5),
        ("\ufeff{}", "Unexpected UTF-8 BOM (decode using utf-8-sig)", 1, 1),
    ],
)
def test_errors_say_what_and_where(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(jsontext.JsonError) as caught:
        jsontext.loads(text)
    assert (caught.value.msg, caught.value.lineno, caught.value.colno) == (message, line, column)


def test_syntax_errors_are_reported_in_a_process_that_never_imported_json() -> None:
    # The C scanner finds its error type only when json.decoder is loaded: jsontext loads it
    # on the error path. Valid documents must not load it.
    code = (
        "import sys\nfrom vmm import jsontext\njsontext.loads('{\"a\": [1]}')\nprint('json' in sys.modules)\n"
        "try:\n    jsontext.loads('{')\nexcept jsontext.JsonError as error:\n    print(error.msg, error.lineno, error.colno)"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False", "Expecting property name enclosed in double quotes 1 2"]


def test_constants_read_as_json_reads_them() -> None:
    values = jsontext.loads("[NaN, Infinity, -Infinity]")
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


@settings(max_examples=300, deadline=None)
@given(st.recursive(SCALARS | st.floats(), lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20))
def test_written_text_is_what_json_writes_compactly(value: object) -> None:
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":"))


def test_non_string_keys_are_written_as_json_writes_them() -> None:
    value = {1: "a", 2.5: None, True: 0, None: [1.0, -math.inf]}
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":"))


def test_unwritable_values_are_refused_as_json_refuses_them() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsontext.dumps({"a": object()})
    with pytest.raises(TypeError, match="keys must be"):
        jsontext.dumps({(1, 2): 0})

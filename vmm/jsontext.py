"""JSON text in and out through the C accelerator `json` itself uses (`_json`), without
importing `json`.

`json`'s Python layer imports `re` and, through it, `enum`, `functools` and `collections`:
~0.6 MiB of private memory for the life of the VMM and ~8 ms of start-up, both product
targets (start-up path: see `vmm`). Parsing goes through the same C scanner as
`json.loads` and so accepts the same documents and reports the same errors (message, line,
column); writing produces what ``json.dumps(value, separators=(",", ":"))`` produces for
the values the VMM writes (dicts with string keys, lists, strings, ints, floats, bools,
None). Both are checked against `json` by property tests.
"""

from __future__ import annotations

import _json

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class JsonError(ValueError):
    """Invalid JSON: ``msg`` at ``lineno``/``colno`` (1-based), as `json.JSONDecodeError`."""

    def __init__(self, msg: str, text: str, pos: int) -> None:
        self.msg = msg
        self.pos = pos
        self.lineno = text.count("\n", 0, pos) + 1
        self.colno = pos - text.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {self.lineno} column {self.colno} (char {pos})")


class DuplicateKey(ValueError):
    """An object names the same key twice (`loads(..., unique_keys=True)`)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return document


class _ScannerContext:
    """The attributes `_json.make_scanner` reads: `json.JSONDecoder`'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


class _UniqueKeysContext(_ScannerContext):
    object_pairs_hook = staticmethod(_unique_keys_object)


_scanners = {False: _json.make_scanner(_ScannerContext()), True: _json.make_scanner(_UniqueKeysContext())}


def _skip_whitespace(text: str, pos: int) -> int:
    return len(text) - len(text[pos:].lstrip(_WHITESPACE))


def _scan(text: str, start: int, unique_keys: bool) -> tuple[object, int]:
    scan_once = _scanners[unique_keys]
    try:
        return scan_once(text, start)
    except SystemError:
        # The scanner raises syntax errors as json.decoder.JSONDecodeError, which it looks up
        # in sys.modules only (a SystemError when absent): load it, on this error path alone,
        # and scan again to get the error itself.
        import json.decoder  # noqa: F401

        return scan_once(text, start)


def loads(text: str, *, unique_keys: bool = False) -> object:
    """The value of the JSON document ``text``; raises `JsonError` as `json.loads` would, and
    with ``unique_keys`` `DuplicateKey` for an object that names a key twice (where `json`
    keeps the last value: a configuration that says two things is refused instead)."""
    if text.startswith("\ufeff"):
        raise JsonError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    start = _skip_whitespace(text, 0)
    try:
        value, end = _scan(text, start, unique_keys)
    except StopIteration as stop:
        raise JsonError("Expecting value", text, stop.value) from None
    except DuplicateKey:
        raise
    except ValueError as error:
        # The C scanner raises json.JSONDecodeError (importing json.decoder to do so).
        pos = getattr(error, "pos", None)
        if pos is None:
            raise
        raise JsonError(getattr(error, "msg", str(error)), text, pos) from None
    end = _skip_whitespace(text, end)
    if end != len(text):
        raise JsonError("Extra data", text, end)
    return value


def dumps(value: object) -> str:
    """Compact JSON (``separators=(",", ":")``, ASCII only) for plain values."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_key_text(key)}:{dumps(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return _json.encode_basestring_ascii(key)
    if key is None or isinstance(key, (bool, int, float)):
        text = dumps(key) if not isinstance(key, float) else _float_text(key)
        return _json.encode_basestring_ascii(text)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")

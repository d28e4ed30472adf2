"""Read one section of ``params.yaml``: the single place a stage's behaviour is set."""

from __future__ import annotations

from pathlib import Path

from .errors import CsxaError

DEFAULT_PARAMS = Path("params.yaml")


def load_section(path: str | Path | None, section: str) -> dict:
    """The ``section`` mapping of the params file, or ``{}`` if no file was given and none exists.

    A file that was named but is missing, does not parse, or whose section is not a mapping is
    an error naming the file.
    """
    import yaml

    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_PARAMS
    if not path.is_file():
        if explicit:
            raise CsxaError("params file not found", path=path)
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CsxaError(f"not valid YAML ({str(exc).splitlines()[0]})", path=path) from None
    if not isinstance(data, dict):
        raise CsxaError("top level must be a mapping of sections", path=path)
    value = data.get(section) or {}
    if not isinstance(value, dict):
        raise CsxaError(f"section {section!r} must be a mapping", path=path)
    return value


def _matches(value, expected) -> tuple[bool, object]:
    """Whether ``value`` fits the annotation ``expected``; returns (ok, value as that type)."""
    import types
    import typing

    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(expected):
            ok, converted = _matches(value, option)
            if ok:
                return True, converted
        return False, value
    if expected is type(None):
        return value is None, value
    if expected is bool:
        return isinstance(value, bool), value
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if expected is str:
        return isinstance(value, str), value
    if expected is dict or origin is dict:
        return isinstance(value, dict), value
    return True, value


def dataclass_from_section(cls, data, section: str, nested: dict | None = None):
    """Build dataclass ``cls`` from a params section, checking every key and value type.

    Unknown keys, a section that is not a mapping and a value of the wrong type are each an
    error naming ``section.key``; ``nested`` maps a field to the dataclass it holds.
    """
    import dataclasses
    import typing

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CsxaError(f"{section} must be a mapping of settings, not {type(data).__name__}", path="params.yaml")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise CsxaError(f"unknown key(s) {unknown} in {section}; expected {sorted(known)}", path="params.yaml")
    values = {}
    for key, value in data.items():
        if nested and key in nested:
            values[key] = dataclass_from_section(nested[key], value, f"{section}.{key}")
            continue
        ok, converted = _matches(value, hints[key])
        if not ok:
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise CsxaError(f"{section}.{key} must be {expected}, not {value!r}", path="params.yaml")
        values[key] = converted
    return cls(**values)


def require(condition: bool, message: str) -> None:
    """A range check on a params value: ``message`` names the key and what is allowed."""
    if not condition:
        raise CsxaError(message, path="params.yaml")

"""Read one section of ``params.yaml``: the single place a stage's behaviour is set."""

from __future__ import annotations

import math
import re
from pathlib import Path

from csxa_data.errors import CsxaError

DEFAULT_PARAMS = Path("params.yaml")
# variant and experiment names become folder names (data/variants/NAME, results/NAME)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)
NAMED_SECTIONS = ("variants", "experiments")
_loaded = DEFAULT_PARAMS  # the file the last section came from, named in range errors


def _unique_key_loader():
    """A safe YAML loader on which a key given twice in one mapping is an error, not last-wins."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: expanded by the base constructor
                continue
            key = loader.construct_object(key_node, deep=deep)
            try:
                if key in keys:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {str(key)[:60]!r} given twice", key_node.start_mark
                    )
                keys.add(key)
            except TypeError:  # an unhashable key: the base constructor says so
                break
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    def whole(loader, node):
        value = yaml.SafeLoader.construct_yaml_int(loader, node)
        if abs(value).bit_length() > 64:  # 0xFFF... and 1:59:59:... are built without Python's digit limit
            raise yaml.constructor.ConstructorError(
                None, None, f"a whole number of {abs(value).bit_length()} bits is no setting", node.start_mark
            )
        return value

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_constructor("tag:yaml.org,2002:int", whole)
    return Loader


def shown(value) -> str:
    """``repr(value)``, bounded: a YAML alias bomb must not be expanded into an error message."""
    import reprlib

    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother, bounded.maxlist, bounded.maxdict = 2, 60, 60, 4, 4
    bounded.maxlong = 40
    try:
        return bounded.repr(value)
    except ValueError:  # an int too long to write in decimal
        return f"<a number of {abs(value).bit_length()} bits>" if isinstance(value, int) else "<unprintable>"


def load_section(path: str | Path | None, section: str) -> dict:
    """The ``section`` mapping of the params file, or ``{}`` if no file was given and none exists
    (or the section is absent or empty).

    A file that was named but is missing, does not parse, holds no YAML document at all, or whose
    section is not a mapping is an error naming the file.
    """
    import yaml

    global _loaded
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_PARAMS
    if not path.is_file():
        if explicit:
            raise CsxaError("params file not found", path=path)
        return {}
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_unique_key_loader())
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:  # ValueError: an int of over 4300 digits
        raise CsxaError(f"not valid YAML ({' '.join(str(exc).split())[:300]})", path=path) from None
    except RecursionError:  # [[[[... or {a: {a: ... nested beyond Python's stack
        raise CsxaError(
            "not a params file: nested too deeply to read (a settings file is a few levels deep)", path=path
        ) from None
    if data is None:  # a truncated or blanked file must not quietly mean "every default"
        raise CsxaError("holds no settings (empty, or only comments); write {} to mean every default", path=path)
    if not isinstance(data, dict):
        raise CsxaError("top level must be a mapping of sections", path=path)
    value = data.get(section)
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise CsxaError(f"section {section!r} must be a mapping", path=path)
    if section in NAMED_SECTIONS:
        for name in value:
            if not (isinstance(name, str) and NAME.fullmatch(name)):
                raise CsxaError(
                    f"{section}: the name {shown(name)} is not a plain name (letters, digits, _ and -, "
                    f"at most 64): it becomes a folder name",
                    path=path,
                )
    _loaded = path
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
    if expected is float:  # a finite number: .inf and a 400-digit integer are no setting
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300
        return ok and not math.isnan(value), float(value) if ok else value
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
        raise CsxaError(f"{section} must be a mapping of settings, not {type(data).__name__}", path=_loaded)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise CsxaError(f"unknown key(s) {shown(unknown)} in {section}; expected {sorted(known)}", path=_loaded)
    values = {}
    for key, value in data.items():
        if nested and key in nested:
            values[key] = dataclass_from_section(nested[key], value, f"{section}.{key}")
            continue
        ok, converted = _matches(value, hints[key])
        if not ok:
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise CsxaError(f"{section}.{key} must be {expected}, not {shown(value)}", path=_loaded)
        values[key] = converted
    return cls(**values)


def worker_count(requested: int | None, jobs: int) -> int:
    """Worker processes for ``jobs`` jobs: as asked (default one per core), never more than the jobs."""
    import os

    return max(1, min(requested or os.cpu_count() or 1, jobs))


def seconds(maximum: float):
    """An argparse type: a finite number of seconds above 0 and at most ``maximum`` (else a usage
    error, exit 2)."""
    import argparse

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
        if not 0 < value <= maximum:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text[:40]} is not within (0, {maximum:g}] seconds")
        return value

    parse.__name__ = "seconds"
    return parse


def whole_number(minimum: int, maximum: int):
    """An argparse type: a whole number within ``minimum..maximum`` (else a usage error, exit 2)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is not within {minimum}..{maximum}")
        return value

    parse.__name__ = "whole number"
    return parse


def require(condition: bool, message: str) -> None:
    """A range check on a params value: ``message`` names the key and what is allowed."""
    if not condition:
        raise CsxaError(message, path=_loaded)

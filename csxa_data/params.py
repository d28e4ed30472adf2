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

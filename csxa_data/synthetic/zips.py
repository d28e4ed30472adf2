"""Deterministic zip archives: sorted members, fixed timestamps, fixed permissions."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from typing import BinaryIO

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def zip_member(name: str, *, compress: bool) -> zipfile.ZipInfo:
    """A ZipInfo with a fixed date and mode, so archive bytes depend only on content."""
    info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # unix, whatever machine writes it
    return info


def write_zip(out: BinaryIO, members: Iterable[tuple[str, bytes]], *, compress: bool = True) -> None:
    """Write ``(name, data)`` members, in the order given, as a deterministic zip."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members:
            archive.writestr(zip_member(name, compress=compress), data, compresslevel=6 if compress else None)


def normalise_zip(data: bytes, replace: dict[str, bytes] | None = None) -> bytes:
    """Rewrite a zip (an xlsx, say) with fixed member timestamps, optionally replacing members."""
    replace = replace or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = [
            (info.filename, replace.get(info.filename, source.read(info.filename))) for info in source.infolist()
        ]
    write_zip(out, members)
    return out.getvalue()

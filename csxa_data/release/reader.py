"""Open a CSXA release as published: ``datasets.xlsx`` plus the PNG and JSON sets, each either as
the official zip or as the folder it unpacks to. The synthetic atlas is read by the same code.

Nothing here interprets values: it finds the header row, maps the configured column names and
lists every file, so that ingest can validate, repair and account for each of them.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from xml.etree.ElementTree import ParseError

import pandas as pd

from csxa_data.errors import CsxaError
from csxa_data.params import dataclass_from_section, require

XLSX_NAME = "datasets.xlsx"
PNG_SET = "datasets-PNG"
JSON_SET = "datasets-JSON"

# name -> (bytes, md5) of the official files of CSXA V3.0 (Science Data Bank, doi 10.57760/sciencedb.15391)
OFFICIAL_FILES = {
    "datasets.xlsx": (8_637_658, "9c6d27010efc62554ffb1f16dc0a8cb3"),
    "datasets-JSON.zip": (1_466_370_159, "bf2e959df985aa5e676302ce92a7ec3c"),
    "datasets-PNG.zip": (1_394_632_623, "008db86e56f05003fa1870430c245bfd"),
}

MD5_POLICIES = ("report", "strict", "off")
HEADER_SEARCH_ROWS = 20
CURVATURE_COLUMN = "Curvature: 1.Lordotic, 2.Straight, 3.Sigmoid1, 4.Sigmoid2, 5.Kyphotic"


@dataclass(frozen=True)
class SheetColumns:
    """Names of the sheet's columns that the toolkit uses; defaults are the synthetic atlas's.

    ``number`` is the join key. The real release's names for gender, age and class are not
    published: set them in ``params.yaml`` (``release.columns``). A column set to ``None`` is
    not read (only ``curvature`` and ``pixel_equivalent`` may be left out).
    """

    number: str = "Number"
    gender: str = "Gender"
    age: str = "Age"
    label: str = "Class"
    curvature: str | None = CURVATURE_COLUMN
    pixel_equivalent: str | None = "Pixel equivalent (mm/pixel)"

    REQUIRED = ("number", "gender", "age", "label")  # the others may be set to null (not read)


@dataclass(frozen=True)
class ReleaseParams:
    """How to read a release: sheet name, column names, class coding and the md5 policy."""

    sheet: str = "Sheet1"
    columns: SheetColumns = field(default_factory=SheetColumns)
    # value in the class column -> label (0 = asymptomatic, 1 = spondylosis)
    label_codes: dict = field(default_factory=lambda: {"asymptomatic": 0, "symptomatic": 1})
    md5: str = "report"

    @classmethod
    def from_dict(cls, data: dict | None) -> ReleaseParams:
        """Build from the ``release`` section of params.yaml; unknown keys are an error."""

        config = dataclass_from_section(cls, data, "release", nested={"columns": SheetColumns})
        for key in SheetColumns.REQUIRED:
            require(bool(getattr(config.columns, key)), f"release.columns.{key} must name a column")
        require(config.md5 in MD5_POLICIES, f"release.md5 must be one of {MD5_POLICIES}, not {config.md5!r}")
        codes = list(config.label_codes.values())
        require(
            all(v in (0, 1) and not isinstance(v, bool) for v in codes) and set(codes) == {0, 1},
            "release.label_codes must map the class column's values to 0 (asymptomatic) and 1 (spondylosis), "
            "each class at least once",
        )
        named = [name for name in vars(config.columns).values() if name]
        require(len(named) == len(set(named)), f"release.columns name a sheet column twice: {named}")
        return config


@dataclass(frozen=True)
class Member:
    """One file of the PNG or JSON set, wherever it is stored."""

    name: str  # base name, e.g. 0001035.png
    stem: str  # name without its last suffix
    size: int
    location: str  # for messages: datasets-PNG.zip:datasets-PNG/0001035.png or the file path


# Caps on what one file of a set may claim, checked before it is read: the real films are about
# 0.3 MB each, a LabelMe JSON with embedded imageData about as much. A member that declares more, or
# that inflates from far fewer compressed bytes (a zip bomb), is refused and its case dropped alone.
MAX_FILE_BYTES = 256 * 2**20
MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_FROM_BYTES = 2**20  # tiny members may compress very well (a JSON of zeros)


class FileSet:
    """The files of one set (PNG or JSON), from a zip or from an unpacked folder.

    Lists every regular file (whatever its suffix), so ingest can keep or drop each one;
    ``skipped`` holds what cannot be a release file, as (key, rule, reason): archive-tool metadata
    (``not_release_file``), links and special files (``not_regular_file``, never followed), and every
    copy of a base name that occurs more than once in the set (``duplicate_case_file``), so that
    ingest logs those too and the case of a duplicated name is dropped alone.
    """

    def __init__(self, set_name: str, members: list[Member], opener, skipped: list[tuple[str, str, str]] = ()):
        self.set_name = set_name
        counts: dict[str, int] = {}
        for m in members:
            counts[m.name] = counts.get(m.name, 0) + 1
        twice = [m for m in members if counts[m.name] > 1]
        skipped = list(skipped) + _duplicate_entries(twice)
        self.members = sorted((m for m in members if counts[m.name] == 1), key=lambda m: m.name)
        self.skipped = sorted(skipped)
        self._by_name = {m.name: m for m in self.members}
        self._open = opener

    def read(self, name: str) -> bytes:
        """The bytes of member ``name`` (its base name)."""
        return self._open(self._by_name[name])

    def declared_size(self, name: str) -> int:
        """The size member ``name`` was listed with (a zip's directory, or the file's size), unread."""
        return self._by_name[name].size

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def table(self) -> pd.DataFrame:
        """One row per file: set, name, stem, size."""
        return pd.DataFrame(
            {
                "set": self.set_name,
                "name": [m.name for m in self.members],
                "stem": [m.stem for m in self.members],
                "size": [m.size for m in self.members],
            }
        )


def _duplicate_entries(copies: list[Member]) -> list[tuple[str, str, str]]:
    """Skipped entries for files whose base name occurs more than once (each copy keyed apart)."""
    out, seen = [], {}
    for m in sorted(copies, key=lambda m: (m.name, m.location)):
        where = [c.location for c in copies if c.name == m.name]
        seen[m.location] = seen.get(m.location, 0) + 1
        key = m.location.rsplit(":", 1)[-1] if ":" in m.location else m.location
        if where.count(m.location) > 1:  # the very same path twice in one zip
            key = f"{key} (copy {seen[m.location]})"
        out.append(
            (
                key,
                "duplicate_case_file",
                f"{m.location}: {len(where)} files named {m.name} in the set; which one is the film is "
                "ambiguous, so none is used",
            )
        )
    return out


def _is_junk(parts: tuple[str, ...]) -> bool:
    # archive tool metadata, not release files
    return parts[0] == "__MACOSX" or parts[-1] in (".DS_Store", "Thumbs.db")


def _printable(name: str) -> str:
    """A file name as text that can be written anywhere: bytes that are not UTF-8 (kept by Python
    as surrogates) become \\xNN escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def size_problem(declared: int, compressed: int | None = None) -> str | None:
    """Why a file of this declared (and, in a zip, compressed) size is not read, or None."""
    if declared > MAX_FILE_BYTES:
        return f"declares {declared:,} bytes, over the {MAX_FILE_BYTES:,} a release file may have; not read"
    if (
        compressed is not None
        and declared >= RATIO_CHECK_FROM_BYTES
        and declared > MAX_COMPRESSION_RATIO * max(compressed, 1)
    ):
        return (
            f"declares {declared:,} bytes from {compressed:,} compressed (over {MAX_COMPRESSION_RATIO}:1, "
            "a zip bomb?); not read"
        )
    return None


def _zip_set(path: Path, set_name: str) -> FileSet:
    try:
        archive = zipfile.ZipFile(path)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CsxaError(
            f"cannot open as a zip archive ({exc}); expected the {set_name} zip or an unpacked folder {set_name}/",
            path=path,
        ) from None
    members, skipped, info_of = [], [], {}
    for info in infos:
        # some Windows tools write "\\" between folders; a file name cannot hold one there
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if not parts:
            continue
        if info.is_dir():
            if info.file_size:  # a folder entry with data: not a file of the release, but not silently
                skipped.append(
                    (
                        info.filename,
                        "not_regular_file",
                        f"{path}:{info.filename}: a folder entry "
                        f"holding {info.file_size:,} bytes, not a file; not read",
                    )
                )
            continue
        if _is_junk(parts):
            skipped.append(
                (
                    info.filename,
                    "not_release_file",
                    f"{path}:{info.filename}: archive-tool metadata, not a release file",
                )
            )
            continue
        if _unsafe(info.filename):
            skipped.append(
                (
                    _printable(info.filename),
                    "unsafe_path",
                    f"{path}:{_printable(info.filename)}: a member named with '..' or an absolute path "
                    "points outside the archive's folder; not a release file, not read",
                )
            )
            continue
        name = parts[-1]
        members.append(Member(name, PurePosixPath(name).stem, info.file_size, f"{path}:{info.filename}"))
        info_of[members[-1].location] = info  # only the entries kept as members are ever opened
    files = FileSet(set_name, members, None, skipped)

    def opener(member: Member) -> bytes:
        info = info_of[member.location]
        problem = size_problem(info.file_size, info.compress_size)
        if problem:
            raise CsxaError(problem, path=member.location)
        try:
            return archive.read(info)  # never more than the declared size (zipfile stops there)
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            ValueError,
            NotImplementedError,
            RuntimeError,
        ) as exc:  # damaged, Deflate64 or encrypted members
            raise CsxaError(f"cannot read from the zip ({exc})", path=member.location) from None

    files._open = opener
    return files


def _unsafe(name: str) -> bool:
    """A zip member name that would leave the archive's folder: absolute, a drive, or with '..'."""
    name = name.replace("\\", "/")
    return name.startswith("/") or re.match(r"[A-Za-z]:", name) is not None or ".." in name.split("/")


RELEASE_SUFFIXES = (".png", ".json")


def _walk(root: Path) -> Iterator[tuple[Path, bool]]:
    """(path, is a link) of every entry below ``root``, sorted, never descending into a link; a
    folder named like a release file (``0001183.json/``) is an entry too, so that it is logged."""
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        linked_dirs = [d for d in dirs if (base / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in linked_dirs)
        named_like_files = [d for d in dirs if d.lower().endswith(RELEASE_SUFFIXES)]
        for name in sorted(names + linked_dirs + named_like_files):
            yield base / name, (base / name).is_symlink()


def _folder_set(path: Path, set_name: str) -> FileSet:
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    # an archive unpacked into a folder of the same name: datasets-PNG/datasets-PNG/*.png
    members, skipped, files = [], [], {}
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        for hidden in sorted(p for p in path.iterdir() if p.name.startswith(".")):  # logged, not lost
            skipped.append(
                (
                    _printable(hidden.name),
                    "not_release_file",
                    f"{_printable(str(hidden))}: a hidden entry "
                    f"beside the folder {_printable(entries[0].name)}/ that the files are read from; not read",
                )
            )
        path = entries[0]
    for p, is_link in sorted(_walk(path)):
        relative = _printable(p.relative_to(path).as_posix())
        shown = _printable(str(p))
        if _is_junk(p.relative_to(path).parts):
            skipped.append((relative, "not_release_file", f"{shown}: archive-tool metadata, not a release file"))
        elif is_link:
            skipped.append(
                (
                    relative,
                    "not_regular_file",
                    f"{shown}: a symbolic link (to {_printable(os.readlink(p))}); "
                    "links are never followed, so nothing outside the release is read",
                )
            )
        elif p.is_dir():
            skipped.append((relative, "not_regular_file", f"{shown}: a folder named like a release file, not a file"))
        elif not p.is_file():
            skipped.append((relative, "not_regular_file", f"{shown}: not a regular file"))
        else:
            name = _printable(p.name)
            members.append(Member(name, PurePosixPath(name).stem, p.stat().st_size, shown))
            files[shown] = p
    file_set = FileSet(set_name, members, None, skipped)

    def opener(member: Member) -> bytes:
        problem = size_problem(member.size)
        if problem:
            raise CsxaError(problem, path=member.location)
        try:
            with open(files[member.location], "rb") as handle:
                return handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise CsxaError(f"cannot read ({exc.strerror})", path=member.location) from None

    file_set._open = opener
    return file_set


def open_file_set(root: Path, set_name: str) -> FileSet:
    """The PNG or JSON set under ``root``: ``<set>.zip`` if present, else the folder ``<set>/``.
    A folder beside the zip (unpacked in place) is not read, and is logged as skipped."""
    archive, folder = root / f"{set_name}.zip", root / set_name
    if archive.is_file():
        files = _zip_set(archive, set_name)
        if folder.is_dir():
            files.skipped = sorted(
                files.skipped
                + [
                    (
                        f"{set_name}/",
                        "not_release_file",
                        f"{_printable(str(folder))}: "
                        f"a folder beside {archive.name}; the zip is read, the folder is not",
                    )
                ]
            )
        return files
    if folder.is_dir():
        return _folder_set(folder, set_name)
    raise CsxaError(
        f"missing {set_name}.zip and {set_name}/; expected one of them (the release's {set_name.split('-')[1]} files)",
        path=root,
    )


def _cell_text(value) -> str:
    return str(value).strip() if value is not None else ""


def read_sheet(path: Path, config: ReleaseParams) -> pd.DataFrame:
    """Read the sheet as text-free raw values, one row per data row, plus ``excel_row``.

    The header row is the first row (within the first 20) with a cell equal to the number
    column's name; rows above it (the title) are skipped, wholly empty rows are not data.
    """
    import openpyxl  # heavy; only needed here
    from openpyxl.utils.exceptions import InvalidFileException

    if not path.is_file():
        raise CsxaError(f"not found; expected the release's Excel sheet {XLSX_NAME}", path=path)
    _check_workbook_parts(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (
        InvalidFileException,
        zipfile.BadZipFile,
        KeyError,
        OSError,
        ValueError,
        SyntaxError,
        zlib.error,
        EOFError,
        TypeError,
        AttributeError,
    ) as exc:  # a damaged part of the workbook, whichever
        raise CsxaError(
            f"cannot read as an .xlsx workbook ({type(exc).__name__}: {str(exc)[:200]})", path=path
        ) from None
    try:
        rows = _sheet_rows(book, path, config)
        rows.attrs["creator"] = str(book.properties.creator or "")
        return rows
    except (ParseError, zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError, EOFError) as exc:
        raise CsxaError(f"the sheet does not read ({type(exc).__name__}: {str(exc)[:200]})", path=path) from None
    finally:
        book.close()


# the workbook author `csxa-data synth` writes (with faults.csv beside the release: see ingest's "synthetic")
SYNTHETIC_CREATOR = "csxa-data synth"
MAX_SHEET_PART_BYTES = 64 * 2**20  # one XML part of the workbook; the release's sheet is well under 1 MB


def _check_workbook_parts(path: Path) -> None:
    """Refuse a workbook with a part (sheet, shared strings, ...) declaring more than
    ``MAX_SHEET_PART_BYTES`` or inflating over 100:1, before any of it is parsed."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CsxaError(f"cannot read as an .xlsx workbook ({type(exc).__name__}: {exc})", path=path) from None
    for info in infos:
        problem = (
            f"declares {info.file_size:,} bytes, over the {MAX_SHEET_PART_BYTES:,} a part of the release's "
            f"workbook may have; not read"
            if info.file_size > MAX_SHEET_PART_BYTES
            else size_problem(info.file_size, info.compress_size)
        )
        if problem:
            raise CsxaError(f"part {_printable(info.filename)!r} {problem}", path=path)


def _sheet_rows(book, path: Path, config: ReleaseParams) -> pd.DataFrame:
    """The header row and the data rows below it, as a frame (see ``read_sheet``)."""
    if config.sheet not in book.sheetnames:
        raise CsxaError(f"no sheet named {config.sheet!r}; the workbook has {book.sheetnames}", path=path)
    sheet = book[config.sheet]
    if not hasattr(sheet, "iter_rows"):
        raise CsxaError(
            f"sheet {config.sheet!r} is a chart, not a worksheet (release.sheet names the sheet holding the table)",
            path=path,
        )
    # The stored dimension may claim the whole grid (one formatted cell at XFD1048576 in a 9 kB
    # file): forget it, so rows are as wide as their own cells and no filler row follows the last.
    sheet.reset_dimensions()
    key = config.columns.number
    header, header_row = None, 0
    rows = sheet.iter_rows(min_row=1, max_row=HEADER_SEARCH_ROWS, values_only=True)
    for header_row, values in enumerate(rows, start=1):  # noqa: B007 (read after the loop)
        if key in (_cell_text(v) for v in values):
            while values and _cell_text(values[-1]) == "":
                values = values[:-1]  # formatted but empty cells right of the header are not columns
            header = [_cell_text(v) for v in values]
            break
    if header is None:
        raise CsxaError(
            f"no header row: no cell {key!r} in the first {HEADER_SEARCH_ROWS} rows "
            f"of sheet {config.sheet!r} (release.columns.number)",
            path=path,
        )
    records, excel_rows = [], []
    # only the header's columns are read; rows missing from the file come back as cheap empty tuples
    rows = sheet.iter_rows(min_row=header_row + 1, max_col=len(header), values_only=True)
    for excel_row, values in enumerate(rows, start=header_row + 1):
        if all(v is None or _cell_text(v) == "" for v in values):
            continue
        records.append(list(values) + [None] * (len(header) - len(values)))
        excel_rows.append(excel_row)
    named = [(i, h) for i, h in enumerate(header) if h]
    dupes = sorted({h for _, h in named if [x for _, x in named].count(h) > 1})
    if dupes:
        raise CsxaError(f"duplicated column name(s) {dupes} in the header row {header_row}", path=path)
    frame = pd.DataFrame([[r[i] for i, _ in named] for r in records], columns=[h for _, h in named], dtype=object)
    frame.insert(0, "excel_row", pd.Series(excel_rows, dtype="int64"))
    frame.attrs["header_row"] = header_row
    return frame


def select_columns(sheet: pd.DataFrame, config: ReleaseParams, path: Path) -> pd.DataFrame:
    """The configured columns under canonical names (excel_row, number, gender, age, label, ...).

    A configured column missing from the sheet is an error that names the columns it has.
    """
    wanted = {f.name: getattr(config.columns, f.name) for f in fields(SheetColumns)}
    wanted = {k: v for k, v in wanted.items() if v}
    missing = [f"{v!r} (release.columns.{k})" for k, v in wanted.items() if v not in sheet.columns]
    if missing:
        have = ", ".join(repr(c) for c in sheet.columns if c != "excel_row")
        raise CsxaError(
            f"sheet {config.sheet!r} lacks the configured column(s) {', '.join(missing)}; it has: {have}", path=path
        )
    out = pd.DataFrame({"excel_row": sheet["excel_row"]})
    for key, column in wanted.items():
        out[key] = sheet[column]
    return out


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    """md5 of a file, streamed."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_official(root: Path, policy: str = "report") -> pd.DataFrame:
    """md5 of each official file present, against the published table.

    status: ``match``; ``mismatch`` (official size but other bytes: a corrupt download);
    ``not official`` (another size: a different release, e.g. the synthetic atlas).
    Under the ``strict`` policy anything but ``match`` is an error.
    """
    rows = []
    if policy == "off":
        return pd.DataFrame(columns=["file", "bytes", "md5", "official_md5", "status"])
    for name, (size, md5) in OFFICIAL_FILES.items():
        path = root / name
        if not path.is_file():
            continue
        actual_size = path.stat().st_size
        actual = file_md5(path)
        status = "match" if actual == md5 else ("mismatch" if actual_size == size else "not official")
        rows.append({"file": name, "bytes": actual_size, "md5": actual, "official_md5": md5, "status": status})
        if policy == "strict" and status != "match":
            raise CsxaError(
                f"md5 {actual} != official {md5} ({status}, {actual_size} bytes, official "
                f"{size}); release.md5 is 'strict'",
                path=path,
            )
    return pd.DataFrame(rows, columns=["file", "bytes", "md5", "official_md5", "status"])


@dataclass
class Release:
    """An opened release: the raw sheet, its configured columns, the two file sets, checksums."""

    root: Path
    config: ReleaseParams
    sheet: pd.DataFrame
    columns: pd.DataFrame
    pngs: FileSet
    jsons: FileSet
    checksums: pd.DataFrame

    def files(self) -> pd.DataFrame:
        """Every file of both sets, one row each."""
        return pd.concat([self.pngs.table(), self.jsons.table()], ignore_index=True)

    def summary(self) -> str:
        """A few human-readable lines on what was found."""
        lines = [
            f"release {self.root}",
            f"  sheet: {len(self.sheet)} rows (header on row {self.sheet.attrs.get('header_row')}), "
            f"{len(self.sheet.columns) - 1} columns",
            f"  {PNG_SET}: {len(self.pngs)} files; {JSON_SET}: {len(self.jsons)} files",
        ]
        for row in self.checksums.itertuples():
            lines.append(f"  md5 {row.file}: {row.status}")
        return "\n".join(lines)


def open_release(root: str | Path, config: ReleaseParams | None = None) -> Release:
    """Open the release in ``root`` (the three files, or the xlsx and the two unpacked folders)."""
    root = Path(root)
    config = config or ReleaseParams()
    if not root.is_dir():
        raise CsxaError(
            "not a folder; expected a folder holding datasets.xlsx and the PNG and JSON "
            "sets (zips or unpacked folders)",
            path=root,
        )
    checksums = verify_official(root, config.md5)
    xlsx = root / XLSX_NAME
    sheet = read_sheet(xlsx, config)
    columns = select_columns(sheet, config, xlsx)
    return Release(root, config, sheet, columns, open_file_set(root, PNG_SET), open_file_set(root, JSON_SET), checksums)


def injected_faults(release_root: str | os.PathLike, fault: str) -> list[dict] | None:
    """The rows of ``fault`` in the ``faults.csv`` that ``csxa-data synth`` writes beside a synthetic
    release (number, stem, fault, label, detail, as text), or None for a release without a readable
    one: the truth that ingest's near-duplicate search and the label-issue ranking measure against."""
    import csv

    faults = Path(release_root).parent / "faults.csv"
    try:
        with open(faults, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if rows and not {"number", "fault", "detail"} <= set(rows[0]):
        return None
    return [row for row in rows if row.get("fault") == fault]

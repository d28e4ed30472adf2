"""The README's copies of the demo's reports, refreshed from the files ``dvc repro`` writes.

    python tools/readme_blocks.py

Each block sits between ``<!-- NAME: begin -->`` and ``<!-- NAME: end -->`` and is rewritten from its
report: the title dropped, its ``##`` sections one level down so that they nest under the README's
own heading. Tests check that every table row of each report appears in the README.
"""

from __future__ import annotations

import sys
from pathlib import Path

from csxa_data.errors import CsxaError

# name: (report, the heading where the README's copy stops, or None for the whole report)
BLOCKS = {
    "compare_table": ("results/compare/table.md", "## The seed paper's Table 1"),
    "cv_table": ("results/compare/cv_table.md", None),
    "gradcam_table": ("results/gradcam.md", None),
    "label_issues": ("results/quality/label_issues.md", None),
}


def readme_block(report: str, stop_at: str | None = None) -> str:
    """``report`` as the README shows it: up to ``stop_at``, without its title, sections one level down."""
    if stop_at is not None and stop_at in report:
        report = report.split(stop_at, 1)[0]
    lines = report.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("##" + line if line.startswith("## ") else line for line in lines).strip() + "\n"


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CsxaError(
            f"{what} not found" + (": run `dvc repro` first" if what == "report" else ""), path=path
        ) from None
    except UnicodeDecodeError:
        raise CsxaError(f"{what} is not UTF-8 text", path=path) from None
    except OSError as exc:
        raise CsxaError(f"cannot read the {what} ({exc.strerror or exc})", path=path) from None


def with_block(text: str, name: str, report: Path, stop_at: str | None, where: Path) -> str:
    """``text`` (a README) with its block ``name`` replaced by ``report``; the block's markers must
    each occur once, in order, and the report must hold a table (a report cut short is refused)."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        found = (text.count(begin), text.count(end))
        raise CsxaError(
            f"no {begin} ... {end} block"
            if found == (0, 0)
            else f"{begin} and {end} must each occur once, in that order (found {found[0]} and {found[1]})",
            path=where,
        )
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    block = readme_block(_read_text(report, "report"), stop_at)
    if not any(line.startswith("|") for line in block.splitlines()):
        raise CsxaError(f"holds no table for the README's {name} block (a report cut short?)", path=report)
    return f"{head}{begin}\n{block}{end}{tail}"


def refresh_block(readme: str | Path, name: str, report: str | Path, stop_at: str | None = None) -> None:
    """Replace the README's block ``name`` with the current ``report``."""
    refresh_blocks(readme, {name: (report, stop_at)})


def refresh_blocks(readme: str | Path, blocks: dict) -> None:
    """Replace each block ``name: (report, stop_at)`` of the README, all or none: every report is
    read and checked before the README is replaced, in one rename."""
    from csxa_data.atomic import atomic_path

    readme = Path(readme)
    text = _read_text(readme, "README")
    for name, (report, stop_at) in blocks.items():
        text = with_block(text, name, Path(report), stop_at, readme)
    with atomic_path(readme) as tmp:
        tmp.write_text(text, encoding="utf-8")


def refresh_readme(readme: str | Path = "docs/results.md", root: str | Path = ".") -> None:
    """Refresh every block of ``BLOCKS`` from the reports under ``root``."""
    refresh_blocks(readme, {name: (Path(root) / report, stop_at) for name, (report, stop_at) in BLOCKS.items()})


if __name__ == "__main__":
    from csxa_data.errors import run_command

    sys.exit(
        run_command(
            "readme_blocks",
            lambda readme: refresh_readme(readme) or 0,
            sys.argv[1] if len(sys.argv) > 1 else "docs/results.md",
            "the page was left as it was",
        )
    )

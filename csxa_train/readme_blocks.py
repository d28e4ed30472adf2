"""The README's copies of the demo's reports, refreshed from the files ``dvc repro`` writes.

    python -m csxa_train.readme_blocks README.md

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
}


def readme_block(report: str, stop_at: str | None = None) -> str:
    """``report`` as the README shows it: up to ``stop_at``, without its title, sections one level down."""
    if stop_at is not None and stop_at in report:
        report = report.split(stop_at, 1)[0]
    lines = report.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("##" + line if line.startswith("## ") else line for line in lines).strip() + "\n"


def refresh_block(readme: str | Path, name: str, report: str | Path, stop_at: str | None = None) -> None:
    """Replace the README's block ``name`` with the current ``report``."""
    readme = Path(readme)
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    text = readme.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise CsxaError(f"no {begin} ... {end} block", path=readme)
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    if not Path(report).is_file():
        raise CsxaError("report not found: run `dvc repro` first", path=report)
    block = readme_block(Path(report).read_text(encoding="utf-8"), stop_at)
    readme.write_text(f"{head}{begin}\n{block}{end}{tail}", encoding="utf-8")


def refresh_readme(readme: str | Path = "README.md", root: str | Path = ".") -> None:
    """Refresh every block of ``BLOCKS`` from the reports under ``root``."""
    for name, (report, stop_at) in BLOCKS.items():
        refresh_block(readme, name, Path(root) / report, stop_at)


if __name__ == "__main__":
    from csxa_data.errors import run_command

    sys.exit(run_command("readme_blocks", lambda readme: refresh_readme(readme) or 0,
                         sys.argv[1] if len(sys.argv) > 1 else "README.md", "README.md may be half refreshed"))

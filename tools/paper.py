"""The seed paper's full protocol with one command, on the real CSXA release:

    python tools/paper.py --release /path/to/csxa

Checks that the release folder holds ``datasets.xlsx``, writes ``params.yaml`` as
``params.paper.yaml`` with ``ingest.release`` set to that folder (the demo's params.yaml stays in
git: ``git checkout params.yaml`` brings it back), and runs ``dvc repro``: ingest, the six variants
at 224 px, the seven experiments (ResNet50, VGG19, ImageNet weights, 30 epochs), the landmark
baseline, the comparison, Grad-CAM, and the cross-validation that the ``cv`` section sets.
``--dry-run`` writes params.yaml and prints the command without running it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from csxa_data.errors import CsxaError, run_command

PROG = "python tools/paper.py"
RELEASE_LINE = re.compile(r"^(  release: ).*$", re.M)  # ingest.release: the only two-space 'release:' key


def paper_params(template: Path, release: Path) -> str:
    """The text of ``template`` with ``ingest.release`` set to ``release`` (comments kept)."""
    import yaml

    text = template.read_text(encoding="utf-8")
    lines = RELEASE_LINE.findall(text)
    if len(lines) != 1:
        raise CsxaError("expected exactly one 'ingest: release:' line", path=template)
    text = RELEASE_LINE.sub(lambda m: m.group(1) + yaml.safe_dump(str(release), default_style='"').strip(), text)
    if yaml.safe_load(text)["ingest"]["release"] != str(release):
        raise CsxaError("could not set ingest.release", path=template)
    return text


def run(args: argparse.Namespace) -> int:
    from csxa_data.atomic import atomic_path

    release = args.release.resolve()
    if not (release / "datasets.xlsx").is_file():
        raise CsxaError(
            "not a CSXA release folder (no datasets.xlsx): give the folder that holds datasets.xlsx "
            "and the PNG and JSON sets",
            path=args.release,
        )
    template = Path(args.template)
    if not template.is_file():
        raise CsxaError("params file not found (run from the project's root)", path=template)
    with atomic_path("params.yaml") as tmp:
        tmp.write_text(paper_params(template, release), encoding="utf-8")
    command = ["dvc", "repro"]
    print(
        f"paper: wrote params.yaml from {template} with ingest.release {release}; "
        f"{'would run' if args.dry_run else 'running'}: {' '.join(command)}",
        flush=True,
    )
    if args.dry_run:
        return 0
    return subprocess.run(command).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--release", type=Path, required=True, help="the CSXA release folder (holds datasets.xlsx)")
    parser.add_argument(
        "--template", default="params.paper.yaml", help="the protocol's params (default: params.paper.yaml)"
    )
    parser.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="write params.yaml, do not run dvc repro"
    )
    return run_command(PROG, run, parser.parse_args(argv), "params.yaml is written; rerun dvc repro to go on")


if __name__ == "__main__":
    sys.exit(main())

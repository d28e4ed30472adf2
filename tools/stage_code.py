"""The code each DVC stage depends on, read from the imports, and dvc.yaml's deps kept equal to it.

    python tools/stage_code.py           # show what differs (exit 1 if anything does)
    python tools/stage_code.py --write   # rewrite the code lines of each stage's deps in dvc.yaml

A stage's code is its command's module (``csxa_data/cli.py`` or ``csxa_train/cli.py``) and every
project module that the modules its command calls import, directly or not
(:func:`csxa_train.params.module_closure`). For the train stage this is exactly the training code
that a checkpoint's identity covers (:func:`csxa_train.params.training_code`). dvc.yaml lists a
folder where every module in it is part of the stage's code, and the files one by one otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from csxa_train.params import PACKAGES, TRAINING_COMMAND, TRAINING_ENTRY, module_closure

ROOT = Path(__file__).resolve().parents[1]
DATA_COMMAND = "csxa_data/cli.py"
# stage -> (its command's module, the modules that command calls)
STAGES = {
    "synth": (DATA_COMMAND, ("csxa_data.synthetic.generate",)),
    "ingest": (DATA_COMMAND, ("csxa_data.ingest.run", "csxa_data.ingest.outputs")),
    "variant": (DATA_COMMAND, ("csxa_data.variants.build", "csxa_data.ingest.outputs")),
    "variants_preview": (DATA_COMMAND, ("csxa_data.variants.preview",)),
    "release_preview": (DATA_COMMAND, ("csxa_data.variants.preview",)),
    "folds": (DATA_COMMAND, ("csxa_data.splits", "csxa_data.ingest.outputs")),
    "train": (TRAINING_COMMAND, TRAINING_ENTRY),
    "cv": (TRAINING_COMMAND, ("csxa_train.cv", "csxa_train.fit")),
    "cv_landmarks": (TRAINING_COMMAND, ("csxa_train.cv", "csxa_train.landmark_baseline")),
    "landmark_baseline": (TRAINING_COMMAND, ("csxa_train.landmark_baseline",)),
    "label_issues": (TRAINING_COMMAND, ("csxa_train.label_issues",)),
    "compare": (TRAINING_COMMAND, ("csxa_train.report.table", "csxa_train.report.cv_table")),
    "explain": (TRAINING_COMMAND, ("csxa_train.explain",)),
}
CODE_LINE = re.compile(rf"^(\s+)- ({'|'.join(PACKAGES)})(/\S*)?\s*$")


def stage_code(stage: str, root: Path = ROOT) -> tuple[str, ...]:
    """The repository paths of a stage's code, sorted."""
    command, entries = STAGES[stage]
    return tuple(sorted({command, *module_closure(entries, root)}))


def as_deps(paths: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``paths`` as dvc.yaml deps: a folder wherever every module under it is listed."""
    wanted = set(paths)

    def whole(folder: Path) -> bool:
        modules = [p.relative_to(root).as_posix() for p in folder.rglob("*.py") if "__pycache__" not in p.parts]
        return bool(modules) and all(m in wanted for m in modules)

    deps, covered = [], set()
    for path in sorted(wanted):
        if path in covered:
            continue
        parts = Path(path).parts
        for depth in range(1, len(parts)):
            folder = Path(*parts[:depth])
            if whole(root / folder):
                deps.append(folder.as_posix())
                covered |= {p for p in wanted if p.startswith(folder.as_posix() + "/")}
                break
        else:
            deps.append(path)
    return deps


def expand(deps: list[str], root: Path = ROOT) -> tuple[str, ...]:
    """dvc.yaml code deps as the module paths they cover."""
    out = set()
    for dep in deps:
        target = root / dep
        if target.is_dir():
            out |= {p.relative_to(root).as_posix() for p in target.rglob("*.py") if "__pycache__" not in p.parts}
        else:
            out.add(dep)
    return tuple(sorted(out))


def stage_blocks(text: str) -> dict[str, tuple[int, int]]:
    """Each stage's line span in dvc.yaml (indices into ``text.splitlines()``)."""
    lines = text.splitlines()
    starts = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"^  ([a-z_]+):\s*$", line))]
    end_of_stages = next(
        (i for i, line in enumerate(lines) if re.match(r"^[a-z]", line) and i > 0 and line.rstrip(":") != "stages"),
        len(lines),
    )
    blocks = {}
    for k, (i, name) in enumerate(starts):
        if i > end_of_stages:
            break
        j = starts[k + 1][0] if k + 1 < len(starts) and starts[k + 1][0] < end_of_stages else end_of_stages
        blocks[name] = (i, j)
    return blocks


def listed_code(text: str, stage: str) -> list[str]:
    """The code deps dvc.yaml lists for ``stage``."""
    lines = text.splitlines()
    start, end = stage_blocks(text)[stage]
    return [m.group(2) + (m.group(3) or "") for line in lines[start:end] if (m := CODE_LINE.match(line))]


def rewrite(text: str) -> str:
    """dvc.yaml with every stage's code deps replaced by what the imports say."""
    lines = text.splitlines()
    for stage, (start, end) in sorted(stage_blocks(text).items(), key=lambda item: -item[1][0]):
        if stage not in STAGES:
            continue
        at = [i for i in range(start, end) if CODE_LINE.match(lines[i])]
        if not at:
            raise SystemExit(f"dvc.yaml: stage {stage} lists no code deps to replace")
        indent = CODE_LINE.match(lines[at[0]]).group(1)
        new = [f"{indent}- {dep}" for dep in as_deps(stage_code(stage))]
        for i in reversed(at):
            del lines[i]
        lines[at[0] : at[0]] = new
    return "\n".join(lines) + "\n"


def differences(text: str) -> list[str]:
    """One line per stage whose listed code differs from its imports' closure."""
    problems = []
    for stage in STAGES:
        listed, wanted = set(expand(listed_code(text, stage))), set(stage_code(stage))
        if listed != wanted:
            problems.append(f"{stage}: missing {sorted(wanted - listed)}, not imported {sorted(listed - wanted)}")
    return problems


def main(argv: list[str]) -> int:
    path = ROOT / "dvc.yaml"
    text = path.read_text()
    if "--write" in argv:
        path.write_text(rewrite(text))
        return 0
    problems = differences(text)
    print("\n".join(problems) or "dvc.yaml lists every stage's code")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``csxa-data``: the data steward's commands (synthetic release, release check, contact sheet)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from csxa_data.errors import CsxaError, run_command
from csxa_data.params import seconds, whole_number

PROG = "csxa-data"


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="params file to read this command's section from (default: ./params.yaml "
        "if present, else built-in defaults)",
    )


def cmd_synth(args: argparse.Namespace) -> int:
    from csxa_data.params import load_section
    from csxa_data.synthetic.generate import SynthParams, write_synthetic_release

    params = SynthParams.from_dict(load_section(args.params, "synth"))
    overrides = {
        k: v
        for k, v in {"cases": args.cases, "seed": args.seed, "size_scale": args.size_scale}.items()
        if v is not None
    }
    params = replace(params, **overrides)
    counts = write_synthetic_release(args.out, params, workers=args.workers, progress=not args.quiet)
    print(
        f"synth: wrote {args.out}/release: {counts['rows']} sheet rows, {counts['images']} images "
        f"({counts['asymptomatic_images']} asymptomatic), {counts['orphan_rows']} rows without an image; "
        f"{counts['faults']} injected faults recorded in {args.out}/faults.csv"
    )
    return 0


def _release_config(args: argparse.Namespace):
    from csxa_data.params import load_section
    from csxa_data.release.reader import ReleaseParams

    return ReleaseParams.from_dict(load_section(args.params, "release"))


def _release_folder(args: argparse.Namespace) -> Path:
    """``--release``, or else ``ingest.release`` from the params file (as ``ingest`` and ``build`` do)."""
    if args.release is not None:
        return args.release
    from csxa_data.params import load_section

    release = load_section(args.params, "ingest").get("release")
    if not isinstance(release, str) or not release:
        raise CsxaError(
            "no --release given and no ingest.release in the params file", path=args.params or "params.yaml"
        )
    return Path(release)


def cmd_check_release(args: argparse.Namespace) -> int:
    from csxa_data.release.reader import JSON_SET, PNG_SET, open_release

    release = open_release(_release_folder(args), _release_config(args))
    print(release.summary())
    empty = [
        what
        for what, count in (
            ("the sheet", len(release.sheet)),
            (PNG_SET, len(release.pngs)),
            (JSON_SET, len(release.jsons)),
        )
        if count == 0
    ]
    if empty:
        raise CsxaError(
            f"{' and '.join(empty)} {'holds' if len(empty) == 1 else 'hold'} nothing: ingest "
            "would keep no case (a case needs its sheet row, film and landmarks)",
            path=release.root,
        )
    return 0


def cmd_contact_sheet(args: argparse.Namespace) -> int:
    from csxa_data.variants.preview import release_contact_sheet

    path = release_contact_sheet(
        _release_folder(args),
        _release_config(args),
        args.out,
        per_class=args.per_class,
        tile=args.tile,
        landmarks=args.landmarks,
    )
    print(f"contact sheet: {path}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from csxa_data.atomic import check_writable
    from csxa_data.ingest.outputs import OUTPUTS, NothingKept, validation_report, write_failure, write_ingest
    from csxa_data.ingest.params import IngestParams
    from csxa_data.ingest.run import run_ingest
    from csxa_data.params import load_section

    params = IngestParams.from_dict(load_section(args.params, "ingest"))
    release = args.release or Path(params.release)
    check_writable(args.out, owns=OUTPUTS)
    try:
        result = run_ingest(release, params, _release_config(args), workers=args.workers, progress=not args.quiet)
    except NothingKept as failure:
        write_failure(failure, args.out)
        raise
    write_ingest(result, args.out)
    if args.metrics:
        from csxa_data.atomic import write_bytes_atomic

        write_bytes_atomic(args.metrics, (Path(args.out) / "validation.json").read_bytes())
    if not args.quiet:
        print(validation_report(result.validation))
    kept, sources = result.validation["kept"], result.validation["sources"]
    print(
        f"ingest: {kept['cases']} cases kept ({kept['by_class']} by class, {kept['by_split']} by split); "
        f"dropped {sources['sheet']['dropped']} sheet rows, {sources['png']['dropped']} PNGs, "
        f"{sources['json']['dropped']} JSONs; {len(result.repairs)} repairs; wrote {args.out}"
    )
    return 0


def cmd_split_salt(args: argparse.Namespace) -> int:
    from csxa_data.ingest.outputs import read_manifest
    from csxa_data.ingest.params import IngestParams
    from csxa_data.params import load_section
    from csxa_data.splits import find_split_salt

    params = IngestParams.from_dict(load_section(args.params, "ingest"))
    manifest = read_manifest(args.manifest)
    salt = find_split_salt(manifest.number, manifest.label, params.test_fraction, start=args.start)
    print(
        f"split-salt: ingest.seed {salt} puts exactly {params.test_fraction:g} of each class of {args.manifest} "
        f"in test; set it in params.yaml before the first published version, and never change it after"
    )
    return 0


def cmd_folds(args: argparse.Namespace) -> int:
    from csxa_data.atomic import atomic_path
    from csxa_data.ingest.outputs import read_manifest
    from csxa_data.params import load_section
    from csxa_data.splits import CvParams, fold_counts, repeated_train_folds, validate_folds

    params = CvParams.from_dict(load_section(args.params, "cv"))
    folds, warnings = repeated_train_folds(read_manifest(args.manifest), params.folds, params.seed, params.repeats)
    validate_folds(folds, args.out)
    for warning in warnings:
        print(f"folds: warning: {warning}", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        folds.to_csv(tmp, index=False)
    first = folds[folds.repeat == 0]
    counts = fold_counts(first.fold, first.label)
    shares = ", ".join(f"{int(counts.loc[k].get(0, 0))}/{int(counts.loc[k].get(1, 0))}" for k in counts.index)
    print(
        f"folds: {first.number.nunique()} train cases in {params.folds} folds x {params.repeats} repeat(s), by case; "
        f"asymptomatic/spondylosis per fold (repeat 0): {shares}; wrote {args.out}"
    )
    return 0


def cmd_fold_salt(args: argparse.Namespace) -> int:
    from csxa_data.ingest.outputs import read_manifest
    from csxa_data.params import load_section
    from csxa_data.splits import CvParams, find_fold_salts

    params = CvParams.from_dict(load_section(args.params, "cv"))
    manifest = read_manifest(args.manifest)
    train = manifest[manifest.split == "train"]
    repeats = args.repeats or params.repeats
    salts = find_fold_salts(train.number, train.label, params.folds, repeats, start=args.start)
    print(
        f"fold-salt: cv.seed {salts[0] if len(salts) == 1 else salts} gives stratified {params.folds}-fold "
        f"cross-validation ({repeats} repeat(s)) of the train split of {args.manifest}; set it in params.yaml and "
        f"keep it, so that folds do not move when cases are added"
    )
    return 0


def _variant_specs(args: argparse.Namespace) -> dict:
    from csxa_data.params import load_section
    from csxa_data.variants.spec import VariantSpec

    if args.params is None and not Path("params.yaml").is_file():
        raise CsxaError("no params file: run in the project's folder (beside params.yaml) or give --params FILE")
    section = load_section(args.params, "variants")
    if not section:
        raise CsxaError("no variants section in the params file", path=args.params or "params.yaml")
    return {name: VariantSpec.from_dict(name, spec) for name, spec in section.items()}


def _ingest_validation(manifest: Path) -> tuple[dict, Path]:
    """Ingest's validation.json beside the manifest (what the dataset card reports), checked."""
    import json

    from csxa_data.ingest.outputs import validation_problem

    path = Path(manifest).parent / "validation.json"
    try:
        validation = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CsxaError(
            "not found beside the manifest; the dataset card needs it (run csxa-data ingest)", path=path
        ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise CsxaError(f"cannot read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})", path=path) from None
    problem = validation_problem(validation)
    if problem:
        raise CsxaError(f"{problem}; run csxa-data ingest again", path=path)
    return validation, path


def cmd_build(args: argparse.Namespace) -> int:
    from csxa_data.atomic import check_writable
    from csxa_data.ingest.outputs import read_manifest
    from csxa_data.ingest.params import IngestParams
    from csxa_data.params import load_section
    from csxa_data.stamp import Stamp
    from csxa_data.variants.build import VARIANT_FILES, build_variant, check_manifest_against_validation
    from csxa_data.variants.spec import BuildParams

    specs = _variant_specs(args)
    if args.variant not in specs:
        raise CsxaError(
            f"no variant {args.variant!r} in params; known: {sorted(specs)}", path=args.params or "params.yaml"
        )
    params = BuildParams.from_dict(load_section(args.params, "build"))
    registry = load_section(args.params, "registry").get("url") or ""
    if not isinstance(registry, str):
        raise CsxaError(f"registry.url must be the registry's git URL (text), not {registry!r}", path=args.params)
    release = args.release or Path(IngestParams.from_dict(load_section(args.params, "ingest")).release)
    stamp = Stamp.from_params(args.variant, load_section(args.params, "variants").get(args.variant))
    out = args.out or Path("data/variants") / args.variant
    check_writable(out, owns=VARIANT_FILES)
    manifest = read_manifest(args.manifest)
    validation, validation_path = _ingest_validation(args.manifest)
    check_manifest_against_validation(manifest, validation, release, validation_path)
    report = build_variant(
        args.variant,
        specs[args.variant],
        manifest,
        release,
        out,
        params,
        workers=args.workers,
        progress=not args.quiet,
        validation=validation,
        registry=registry,
        stamp=stamp,
    )
    parts = [
        f"{split}: {t['samples']} samples of {t['cases']} cases in {t['shards']} shards {t['by_class']}"
        for split, t in report["totals"].items()
    ]
    print(f"build {args.variant}: " + "; ".join(parts) + f"; {len(report['skipped'])} cases skipped; wrote {out}")
    return 0


def cmd_compare_variants(args: argparse.Namespace) -> int:
    from csxa_data.variants.preview import compare_variants

    path = compare_variants(args.variants_dir, list(_variant_specs(args)), args.out, per_class=args.per_class)
    print(f"variant comparison: {path}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from csxa_data.publish import publish

    tag, release = publish(args.repo, args.name, args.version, message=args.message, remote=args.remote)
    made = f"made release commit {release[:12]} (the card names the version) and " if release else ""
    share = f"git push origin HEAD {tag}" if release else f"git push origin {tag}"
    print(
        f"publish: {made}tagged {tag} (annotated) at HEAD; share it with `{share}`; consumers: "
        f"`dvc artifacts get REPO {args.name} --rev {args.version}` or "
        f"`dvc import REPO PATH --rev {tag}`"
    )
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from csxa_data.registry import read_artifacts, read_versions, require_version, resolve_version

    if args.check:
        if args.check == "latest":
            tag, entry = resolve_version(args.repo, args.name, "latest", timeout=args.timeout)
        else:
            entry = require_version(args.repo, args.name, args.check, timeout=args.timeout)
        print(f"{args.name}@{entry['version']}: commit {entry['commit_hexsha']}")
        return 0
    if args.name is None:
        for artifact in read_artifacts(args.repo).values():
            print(f"{artifact.name}\t{artifact.type}\t{artifact.path}")
        return 0
    if (Path(args.repo) / "dvc.yaml").is_file():  # a local registry says which artifacts it has
        known = read_artifacts(args.repo)
        if args.name not in known:
            raise CsxaError(
                f"no artifact {args.name!r} in dvc.yaml; known: {sorted(known)}", path=Path(args.repo).resolve()
            )
    versions = read_versions(args.repo, args.name, timeout=args.timeout)
    if not versions:
        print(f"{args.name}: no published versions")
    live = [entry for entry in versions if not entry["withdrawn"]]
    for entry in versions:
        status = f"withdrawn: {entry['withdrawn']}" if entry["withdrawn"] else "latest" if entry is live[-1] else ""
        print(
            f"{args.name}@{entry['version']}\t{entry['commit_hexsha'][:12]}\t{entry['created_at']}"
            + (f"\t({status})" if status else "")
        )
        for line in version_summary(entry["message"]):
            print(f"    {line}")
    return 0


def version_summary(message: str) -> list[str]:
    """A version's title and the parameter lines of its release notes (``publish`` writes them)."""
    lines = message.splitlines()
    out = lines[:1]
    for i, line in enumerate(lines):
        if line.startswith("Parameters ("):
            out += [item[2:] for item in lines[i + 1 :] if item.startswith("- ")][:6]
    return out


def cmd_diff(args: argparse.Namespace) -> int:
    from csxa_data.diff import diff_markdown, variant_diff
    from csxa_data.registry import resolve_version

    sides = [resolve_version(args.repo, args.name, rev) for rev in (args.rev_a, args.rev_b)]
    labels = tuple(entry["version"] if entry else rev for (_, entry), rev in zip(sides, (args.rev_a, args.rev_b)))
    change = variant_diff(args.repo, args.name, sides[0][0], sides[1][0], path=args.path, labels=labels)
    if args.json:
        print(json.dumps(change, indent=2))
    else:
        print(diff_markdown(change), end="")
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    from csxa_data.publish import withdraw

    tag = withdraw(args.repo, args.name, args.version, args.reason)
    print(
        f"withdraw: {tag} withdrawn ({args.reason.strip()}); `latest` now skips it and anyone naming it is "
        "warned; share it with `git push origin --tags`"
    )
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from csxa_data.pull import pull

    pull(args.repo, args.targets, remote=args.remote, timeout=args.timeout)
    return 0


def _add_registry_commands(sub) -> None:
    """The registry's sub-commands: publish, versions, diff, withdraw, pull."""
    publish = sub.add_parser(
        "publish",
        help="publish a version of an artifact: an annotated git tag NAME@vX.Y.Z (made with gto)",
        description="Tag the current commit NAME@VERSION (annotated, DVC's artifact convention, made with gto) "
        "so that `dvc artifacts get REPO NAME --rev VERSION` and `dvc import REPO PATH --rev "
        "NAME@VERSION` find it. Refuses a name that is not in dvc.yaml `artifacts:`, a version "
        "that is malformed, already published or not newer than the latest, and an artifact whose "
        "stage is not up to date with a committed dvc.lock or whose files are not all in the DVC "
        "remote (run `dvc push PATH` first). A variant first gets a release commit: the version, title and "
        "release notes written to variants.NAME.published in params.yaml, its stage rebuilt (only the card "
        "and croissant.json may change), pushed and committed; the tag goes on that commit. The commit and "
        "tag are local until `git push origin HEAD TAG`.",
    )
    publish.add_argument("name", help="artifact name, as in dvc.yaml `artifacts:` (a variant or an experiment)")
    publish.add_argument("version", help="semantic version with a leading v, for example v1.0.0")
    publish.add_argument("--repo", type=Path, default=Path("."), help="repository root (default: %(default)s)")
    publish.add_argument("--remote", help="DVC remote that must hold the files (default: the default remote)")
    publish.add_argument(
        "--message", help="the tag's title line (default: 'Publish TYPE NAME VERSION'); release notes follow it"
    )
    publish.set_defaults(func=cmd_publish)

    versions = sub.add_parser(
        "versions",
        help="list the artifacts of a registry, or the published versions of one",
        description="Without NAME: every artifact in dvc.yaml (name, type, path). With NAME: its published "
        "versions (tag, commit, date; the latest marked, withdrawn ones with their reason; under each, its "
        "title and the parameters its release notes say changed), read from a local repository or a git "
        "URL. With --check VERSION (or latest): exit 0 and its commit if that version is published, else "
        "one line naming the versions that are (exit 2), before a `dvc import` or `dvc artifacts get` pins it.",
    )
    versions.add_argument("name", nargs="?", help="artifact name (default: list the artifacts)")
    versions.add_argument("--repo", default=".", help="registry: a path or git URL (default: %(default)s)")
    versions.add_argument(
        "--check",
        metavar="VERSION",
        help="require this version (for example v1.0.0, or latest) to be published; prints its commit",
    )
    versions.add_argument(
        "--timeout",
        type=seconds(86400),
        default=300.0,
        help="seconds to read the tags (a clone, for a git URL) before giving up (default: %(default)s)",
    )
    versions.set_defaults(func=cmd_versions)

    diff = sub.add_parser(
        "diff",
        help="what changed in a variant between two versions: cases, labels, splits, images, parameters",
        description="Compare a variant between two revisions of a registry (each a version vX.Y.Z, `latest`, "
        "a tag or a commit; the registry a path or git URL): cases added and removed, labels changed, "
        "cases that moved split (there should be none), images whose bytes changed, other per-case "
        "metadata (crop boxes...), repairs and drops, and the parameters in dvc.lock of the stages that "
        "build it. Both sides are read as consumers read them, every file checked against its "
        "revision's md5; shards with the same md5 on both sides are not downloaded. Markdown, or --json. "
        "Exit 0 when it could compare, 2 with one line when not.",
    )
    diff.add_argument("name", help="variant name (an artifact of type dataset)")
    diff.add_argument("rev_a", metavar="REV_A", help="the older side: vX.Y.Z, latest, a tag or a commit")
    diff.add_argument("rev_b", metavar="REV_B", help="the newer side (HEAD: the registry's current commit)")
    diff.add_argument("--repo", default=".", help="registry: a path or git URL (default: %(default)s)")
    diff.add_argument("--path", help="the variant's folder in the registry (default: data/variants/NAME)")
    diff.add_argument("--json", action="store_true", help="print the comparison as JSON")
    diff.set_defaults(func=cmd_diff)

    withdraw = sub.add_parser(
        "withdraw",
        help="withdraw a published version (gto's deregistration tag), with a reason",
        description="Mark NAME@VERSION withdrawn with gto's deregistration tag NAME@VERSION! (annotated), whose "
        "message is the reason. `latest` (versions --check latest, fit --rev latest) then skips it; "
        "a consumer who names it still gets the same bytes, with a warning giving the reason. The tag is "
        "local until `git push origin --tags`.",
    )
    withdraw.add_argument("name", help="artifact name")
    withdraw.add_argument("version", help="the published version to withdraw, for example v1.1.0")
    withdraw.add_argument("--reason", required=True, help="why (consumers see it)")
    withdraw.add_argument("--repo", type=Path, default=Path("."), help="repository root (default: %(default)s)")
    withdraw.set_defaults(func=cmd_withdraw)

    pull = sub.add_parser(
        "pull",
        help="`dvc pull` with a time limit and, on failure, a hint about the remote",
        description="Run `dvc pull TARGETS` (DVC's own output passes through). If it fails or runs past "
        "--timeout, check whether the remote answers and end with one line saying what to do.",
    )
    pull.add_argument("targets", nargs="*", help="outputs or stages to pull (default: everything)")
    pull.add_argument("--repo", type=Path, default=Path("."), help="repository root (default: %(default)s)")
    pull.add_argument("--remote", help="DVC remote (default: the default remote)")
    pull.add_argument(
        "--timeout", type=seconds(86400), default=600.0, help="seconds before giving up (default: %(default)s)"
    )
    pull.set_defaults(func=cmd_pull)


def build_parser() -> argparse.ArgumentParser:
    """The ``csxa-data`` argument parser, one sub-command per step."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Read, validate and publish the Cervical Spine X-ray Atlas (CSXA). Without the real "
        "release, `synth` writes a synthetic one in the same format, with the same faults.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = sub.add_parser(
        "synth",
        help="write a synthetic release in the real release's layout, with its faults",
        description="Write OUT/release/ (datasets.xlsx, datasets-PNG.zip, datasets-JSON.zip, as CSXA is "
        "published) and beside it OUT/faults.csv (every injected fault), OUT/truth.csv (what "
        "each case is) and OUT/truth_landmarks.csv. Same seed and parameters give "
        "byte-identical files, whatever --workers. --cases 5000 gives the real counts: 5,000 "
        "rows, 4,963 images, 181 asymptomatic.",
    )
    _add_params(synth)
    synth.add_argument("--out", type=Path, default=Path("data/synthetic"), help="output folder (default: %(default)s)")
    synth.add_argument("--cases", type=int, help="number of sheet rows (overrides synth.cases)")
    synth.add_argument("--seed", type=int, help="random seed (overrides synth.seed)")
    synth.add_argument(
        "--size-scale", type=float, help="image size relative to the real films' (overrides synth.size_scale)"
    )
    synth.add_argument(
        "--workers", type=whole_number(1, 256), default=None, help="worker processes (default: one per core)"
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=cmd_synth)

    check = sub.add_parser(
        "check-release",
        help="open a release and report what it holds (files, sheet, md5)",
        description="Open a release given as datasets.xlsx plus datasets-PNG.zip and datasets-JSON.zip, or "
        "plus the unpacked folders datasets-PNG/ and datasets-JSON/; find the header row; check "
        "the configured columns (release.columns in params.yaml) and the md5 of official files.",
    )
    _add_params(check)
    check.add_argument("--release", type=Path, help="folder holding the release (default: ingest.release)")
    check.set_defaults(func=cmd_check_release)

    ingest = sub.add_parser(
        "ingest",
        help="validate, repair, reconcile and split a release into a clean manifest",
        description="Validate the sheet, the file names and the LabelMe JSONs against the contracts in "
        "schemas/, repair what the seed paper repaired (sheet age := file-name age; untidy, "
        "polygon and duplicated landmarks), drop what cannot be used, and split by case. Writes "
        "OUT/manifest.csv, landmarks.csv, repairs.csv, drops.csv, validation.json and "
        "validation.md. Every sheet row, PNG and JSON is kept or dropped with its rule; the run "
        "fails if the counts do not reconcile.",
    )
    _add_params(ingest)
    ingest.add_argument("--release", type=Path, help="folder holding the release (default: ingest.release)")
    ingest.add_argument("--out", type=Path, default=Path("data/ingest"), help="output folder (default: %(default)s)")
    ingest.add_argument(
        "--workers", type=whole_number(1, 256), default=None, help="worker processes (default: one per core)"
    )
    ingest.add_argument(
        "--metrics",
        type=Path,
        default=None,
        help="also write a copy of validation.json here, for a git-tracked metrics file that "
        "`dvc metrics show/diff` compares (the pipeline uses metrics/ingest.json)",
    )
    ingest.add_argument("--quiet", action="store_true", help="no progress bar or report")
    ingest.set_defaults(func=cmd_ingest)

    salt = sub.add_parser(
        "split-salt",
        help="find the split salt (ingest.seed) that splits a release's classes exactly",
        description="The split puts a case in test where a keyed hash of its number (salted with ingest.seed) is "
        "below ingest.test_fraction, so later versions that add or remove cases move no other case. "
        "This searches, once per registry, the first salt from --start that also puts exactly "
        "round(n x test_fraction) cases of each class in test for the given manifest.",
    )
    _add_params(salt)
    salt.add_argument("--manifest", type=Path, default=Path("data/ingest/manifest.csv"), help="default: %(default)s")
    salt.add_argument(
        "--start", type=whole_number(0, 2**62), default=0, help="first salt to try (default: %(default)s)"
    )
    salt.set_defaults(func=cmd_split_salt)

    folds = sub.add_parser(
        "folds",
        help="assign every train case to a cross-validation fold (cv section) and store it",
        description="A case's fold is floor(cv.folds x h), h a keyed hash of its case number salted with cv.seed "
        "(one salt per repeat), so the folds are by case (a colour variant's two orders share one), "
        "and adding or removing cases moves no other case. Only the train split is folded: the test "
        "split stays the untouched hold-out. Writes OUT (number, label, repeat, fold), checked against "
        "schemas.Folds. More folds than the smallest class has train cases is an error.",
    )
    _add_params(folds)
    folds.add_argument("--manifest", type=Path, default=Path("data/ingest/manifest.csv"), help="default: %(default)s")
    folds.add_argument("--out", type=Path, default=Path("data/folds.csv"), help="default: %(default)s")
    folds.set_defaults(func=cmd_folds)

    fold_salt = sub.add_parser(
        "fold-salt",
        help="find stratified fold salts (cv.seed) for a release's train split",
        description="Search, once per registry, the first salt from --start whose cv.folds folds hold every class in "
        "near-equal shares (within 10%% or one case); with --repeats R, R such salts, each the first "
        "after the previous. Freeze the result in cv.seed.",
    )
    _add_params(fold_salt)
    fold_salt.add_argument(
        "--manifest", type=Path, default=Path("data/ingest/manifest.csv"), help="default: %(default)s"
    )
    fold_salt.add_argument(
        "--start", type=whole_number(0, 2**62), default=0, help="first salt to try (default: %(default)s)"
    )
    fold_salt.add_argument(
        "--repeats", type=whole_number(1, 100), default=None, help="salts to find (default: cv.repeats)"
    )
    fold_salt.set_defaults(func=cmd_fold_salt)

    build = sub.add_parser(
        "build",
        help="build one preprocessing variant as WebDataset shards",
        description="Decode each kept case's PNG once, crop (centre or landmark box, optionally grown), "
        "colour (grey, or grey + equalised + inverted stacked in two orders), resize, and write "
        "OUT/train-%06d.tar and OUT/test-%06d.tar with stats.json (train-only mean/std), "
        "shards.json (counts per class and sha256 per shard, skipped cases) and preview.png. "
        "The variant's settings are variants.<name> in params.yaml; shard layout is `build`.",
    )
    _add_params(build)
    build.add_argument("--variant", required=True, help="name of a variants.<name> section")
    build.add_argument(
        "--manifest", type=Path, default=Path("data/ingest/manifest.csv"), help="ingest manifest (default: %(default)s)"
    )
    build.add_argument("--release", type=Path, help="release folder with the PNGs (default: ingest.release)")
    build.add_argument("--out", type=Path, help="output folder (default: data/variants/<variant>)")
    build.add_argument(
        "--workers", type=whole_number(1, 256), default=None, help="worker processes (default: one per core)"
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=cmd_build)

    compare = sub.add_parser(
        "compare-variants",
        help="draw the same test cases in every built variant, one row per variant",
        description="Read the first test cases of each class from every variant named in params.yaml and "
        "draw them side by side, a row per variant.",
    )
    _add_params(compare)
    compare.add_argument("--variants-dir", type=Path, default=Path("data/variants"), help="default: %(default)s")
    compare.add_argument("--out", type=Path, required=True, help="PNG to write")
    compare.add_argument(
        "--per-class", type=whole_number(1, 100), default=2, help="cases per class (default: %(default)s)"
    )
    compare.set_defaults(func=cmd_compare_variants)

    sheet = sub.add_parser(
        "contact-sheet",
        help="draw a PNG of a few asymptomatic and a few spondylotic films of a release",
        description="Pick the first N cases of each class (by case number, classes from the sheet) and draw "
        "them side by side in two labelled rows.",
    )
    _add_params(sheet)
    sheet.add_argument("--release", type=Path, help="folder holding the release (default: ingest.release)")
    sheet.add_argument("--out", type=Path, required=True, help="PNG to write")
    sheet.add_argument(
        "--per-class", type=whole_number(1, 100), default=4, help="films per class (default: %(default)s)"
    )
    sheet.add_argument(
        "--tile", type=whole_number(16, 2048), default=260, help="tile height in pixels (default: %(default)s)"
    )
    sheet.add_argument("--landmarks", action="store_true", help="mark the 23 landmarks from the JSON files")
    sheet.set_defaults(func=cmd_contact_sheet)
    _add_registry_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input ends in one ``csxa-data: error:`` line and exit code 2, never a traceback."""
    args = build_parser().parse_args(argv)
    return run_command(PROG, args.func, args, "no output was left half-written")


if __name__ == "__main__":
    sys.exit(main())

"""``csxa-train``: train and evaluate on a published variant (a folder, an http(s) mirror or a registry revision).

Run under ``torchrun --nproc_per_node N`` for several GPUs (or CPU processes): the same command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from csxa_data.errors import CsxaError, run_command
from csxa_data.params import whole_number

# the model names, without importing torch (models.py checks the same list)
MODELS = ("resnet18", "resnet34", "resnet50", "vgg11", "vgg16", "vgg19", "smallcnn", "resnetsmall", "vggsmall")

PROG = "csxa-train"


def _train_settings(args: argparse.Namespace) -> dict:
    """The ``train`` section, the experiment's overrides, then the command line's."""
    from csxa_data.params import load_section

    settings = dict(load_section(args.params, "train"))
    if args.experiment:
        experiments = load_section(args.params, "experiments")
        if args.experiment not in experiments:
            raise CsxaError(
                f"no experiment {args.experiment!r}; known: {sorted(experiments)}", path=args.params or "params.yaml"
            )
        experiment = experiments[args.experiment] or {}
        if not isinstance(experiment, dict):
            raise CsxaError(
                f"experiments.{args.experiment} must be a mapping of settings", path=args.params or "params.yaml"
            )
        _check_experiment_keys(args.experiment, experiment, args.params)
        settings.update(experiment)
        named = settings.pop("variant", None)
        if args.variant is None and named:
            args.variant = f"data/variants/{named}"  # named by --variant, which the DVC stage tracks as a dependency
    for key in ("model", "weights", "balance", "epochs", "batch_size", "image_size", "seed", "workers"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.variant is None:
        raise CsxaError("no variant: give --variant (a variant folder or URL) or an --experiment that names one")
    settings["variant"] = _from_registry(args, args.variant)
    return settings


def _from_registry(args: argparse.Namespace, variant: str | None) -> str | None:
    """With --registry, the variant (a name or a path in the registry) at --rev, read without a clone."""
    from csxa_data.shards.sources import registry_variant

    if getattr(args, "registry", None) is None:
        if getattr(args, "rev", None):
            raise CsxaError("--rev needs --registry (the registry's git URL or path)")
        return variant
    if not variant:
        raise CsxaError("--registry needs --variant (a variant name such as wide_cropped, or its path)")
    return registry_variant(args.registry, variant, args.rev)


def _add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        metavar="REPO",
        help="read the variant from this csxa registry (git URL or path) through DVC, without a "
        "clone or pull; --variant is then a variant name or its path in the registry",
    )
    parser.add_argument(
        "--rev",
        help="with --registry: a published version (v1.0.0, meaning VARIANT@v1.0.0), a tag, "
        "branch or commit (default: the registry's default branch)",
    )


def _check_experiment_keys(name: str, experiment: dict, params) -> None:
    """An unknown key in experiments.NAME is named as such (not as a key of ``train``)."""
    import dataclasses

    from csxa_train.params import TrainParams

    known = {f.name for f in dataclasses.fields(TrainParams)}
    unknown = sorted(map(str, set(experiment) - known))
    if unknown:
        raise CsxaError(
            f"unknown key(s) {unknown} in experiments.{name}; expected {sorted(known)}", path=params or "params.yaml"
        )


def cmd_fit(args: argparse.Namespace) -> int:
    from csxa_train.fit import fit
    from csxa_train.params import TrainParams

    settings = _train_settings(args)
    if args.out is None:
        if not args.experiment:
            raise CsxaError("no output folder: give --out, or an --experiment (then results/<experiment>)")
        args.out = Path("results") / args.experiment
    config = TrainParams.from_dict(settings)  # every setting checked (the model too) before any data is read
    fit(config, args.out, title=args.experiment or Path(args.out).name)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from csxa_data.atomic import write_files_atomic
    from csxa_data.params import load_section
    from csxa_train.report import cv_table as cv_report
    from csxa_train.report import table as table_report
    from csxa_train.report.table import CompareParams, with_landmark_baselines

    settings = dict(load_section(args.params, "compare"))
    for key in ("reference", "resamples", "seed", "operating_point"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    config = CompareParams.from_dict(settings)
    experiments = load_section(args.params, "experiments")
    if config.landmarks:
        experiments = with_landmark_baselines(experiments)
    train_model = load_section(args.params, "train").get("model", "resnet50")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CsxaError("exists and is not a folder; the report is a folder of files; nothing was done", path=args.out)
    # every input read and checked before any report is replaced, so the two never disagree
    table, facts = table_report.compare_results(args.results, experiments, train_model, config)
    cv = cv_report.cv_results(args.cv, experiments, train_model, config) if args.cv is not None else None
    # both reports' files replaced together or not at all
    write_files_atomic(
        Path(args.out),
        {**table_report.report_files(table, facts), **(cv_report.report_files(*cv) if cv is not None else {})},
    )
    below = [e for e, beats in zip(table.experiment[:-1], table.beats_baseline[:-1]) if not beats]
    print(
        f"compare: {len(table) - 1} experiments on {facts['n']} test cases against {facts['reference']}; "
        f"{len(below)} not above the majority baseline's accuracy {table.accuracy.iloc[-1]:.3f}"
        f"{' (' + ', '.join(below) + ')' if below else ''}; wrote {args.out}/table.md"
    )
    if cv is not None:
        summary, folds, cv_facts = cv
        print(
            f"compare: cross-validation of {len(summary)} experiments, {cv_facts['folds']} folds x "
            f"{cv_facts['repeats']} repeat(s) over {cv_facts['n']} train cases; wrote {args.out}/cv_table.md"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from csxa_train.fit import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint, args.out, variant=_from_registry(args, args.variant), workers=args.workers
    )
    if metrics is not None:
        print(
            f"evaluate: balanced accuracy {metrics['balanced_accuracy']:.3f}, accuracy {metrics['accuracy']:.3f} "
            f"(baseline {metrics['baseline']['accuracy']:.3f}); wrote {args.out}"
        )
    return 0


def cmd_landmarks(args: argparse.Namespace) -> int:
    from csxa_data.params import load_section
    from csxa_train.landmark_baseline import LandmarkParams, Protocol, run_baseline, summary_line

    config = LandmarkParams.from_dict(load_section(args.params, "landmarks"))
    protocol = Protocol.from_train_section(load_section(args.params, "train"))
    results = run_baseline(
        args.manifest, args.landmarks, args.results, config, protocol, measurements_out=args.measurements
    )
    for name, details in results.items():
        print(summary_line(name, details))
    print(f"landmarks: wrote {', '.join(str(Path(args.results) / n) for n in results)}")
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    from csxa_data.splits import read_folds
    from csxa_train.cv import cross_validate, summary_line
    from csxa_train.params import TrainParams

    settings = _train_settings(args)
    if args.out is None:
        if not args.experiment:
            raise CsxaError("no output folder: give --out, or an --experiment (then results/cv/<experiment>)")
        args.out = Path("results") / "cv" / args.experiment
    config = TrainParams.from_dict(settings)
    folds = read_folds(args.folds)
    oof = cross_validate(
        config, folds, args.out, title=args.experiment or Path(args.out).name, folds_path=str(args.folds)
    )
    print(f"{summary_line(args.experiment or Path(args.out).name, oof)}; wrote {args.out}")
    return 0


def cmd_cv_landmarks(args: argparse.Namespace) -> int:
    from csxa_data.params import load_section
    from csxa_data.splits import read_folds
    from csxa_train.cv import cross_validate_landmarks, summary_line
    from csxa_train.landmark_baseline import LandmarkParams, Protocol

    config = LandmarkParams.from_dict(load_section(args.params, "landmarks"))
    protocol = Protocol.from_train_section(load_section(args.params, "train"))
    results = cross_validate_landmarks(
        args.manifest,
        args.landmarks,
        read_folds(args.folds),
        args.results,
        config,
        protocol,
        folds_path=str(args.folds),
    )
    for name, oof in results.items():
        print(f"{summary_line(name, oof)}; wrote {Path(args.results) / name}")
    return 0


def cmd_label_issues(args: argparse.Namespace) -> int:
    from csxa_data.ingest.params import IngestParams
    from csxa_data.params import load_section
    from csxa_train.label_issues import QualityParams, write_label_issues

    params = QualityParams.from_dict(load_section(args.params, "quality"))
    release = args.release or Path(IngestParams.from_dict(load_section(args.params, "ingest")).release)
    summary = write_label_issues(args.cv, args.manifest, args.landmarks, release, args.out, params)
    truth = summary.get("truth")
    measured = (
        f"; against the injected flips: {truth['found_in_top_k']} of {truth['k']} rankable in the top {truth['k']}"
        if truth
        else ""
    )
    print(
        f"label-issues: {summary['cases_ranked']} cases ranked, {summary['flagged']} flagged{measured}; wrote {args.out}"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from csxa_train.explain import explain, explain_all

    if args.all == (args.checkpoint is not None):
        raise CsxaError("give either --checkpoint (one experiment) or --all (every experiment of params.yaml)")
    if args.all:
        from csxa_data.params import load_section

        if args.out is not None or args.variant is not None:
            raise CsxaError(
                "--all writes into RESULTS/EXPERIMENT/ for each experiment: --out and --variant do not apply"
            )
        table = explain_all(
            list(load_section(args.params, "experiments")),
            args.results,
            per_kind=args.per_kind,
            progress=not args.quiet,
        )
        print(f"explain: wrote gradcam.png, gradcam.csv and gradcam.json for each experiment, and {table}")
        return 0
    summary = explain(args.checkpoint, args.out, variant=args.variant, per_kind=args.per_kind, progress=not args.quiet)
    share, area = summary["heat_in_box"], summary["box_area"]
    print(
        f"explain {summary['experiment']}: {'n/a' if share is None else f'{share:.1%}'} of the Grad-CAM heat inside "
        f"the landmark box, which covers {area:.1%} of the image, over {summary['n']} test cases; "
        f"wrote {Path(args.out) if args.out else Path(args.checkpoint).parent}/gradcam.png"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``csxa-train`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the seed paper's classifiers on a published CSXA variant and evaluate them "
        "honestly (balanced accuracy, sensitivity, specificity, AUROC and the majority "
        "baseline beside accuracy). Reads only the variant's shards, shards.json and "
        "stats.json. Several GPUs or processes: torchrun --nproc_per_node N -m csxa_train ...",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit",
        help="train one experiment, checkpoint every epoch, evaluate on the test split",
        description="Stream the variant's train split into memory (balanced as `balance` says: smote, "
        "weighted_sampler, class_weighted_loss or none), train with Adam and a step decay, the "
        "paper's flips and rotations on train batches only, then score every test sample once. "
        "Writes OUT/checkpoint.pt (resumed if the run is interrupted), metrics.json (headline numbers), "
        "evaluation.json (details), predictions.csv, roc.csv, confusion.csv, calibration.csv, "
        "train_log.csv and report.png. A colour variant takes one channel order per case per epoch "
        "(train.train_orders) and is scored by the mean of both orders (train.test_orders); a "
        "validation part of the train split (train.val_fraction) chooses the threshold (train.threshold). Settings: the `train` section of "
        "params.yaml, then experiments.<name>, then these options.",
    )
    fit.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml if present)")
    fit.add_argument("--experiment", help="name of an experiments.<name> section")
    fit.add_argument(
        "--variant",
        help="variant folder, http(s):// URL of a mirror of one, dvc://REPO?rev=..&path=.., or with "
        "--registry a variant name (default: data/variants/<the experiment's variant>)",
    )
    fit.add_argument(
        "--out", type=Path, default=None, help="output folder (default with --experiment: results/<experiment>)"
    )
    fit.add_argument("--model", help=f"one of: {', '.join(MODELS)} (default: train.model)")
    fit.add_argument("--weights", help="imagenet, none, or a path to a local torchvision state dict")
    fit.add_argument("--balance", help="smote, weighted_sampler, class_weighted_loss or none")
    fit.add_argument("--epochs", type=int, help="passes over the train split (default: train.epochs)")
    fit.add_argument("--batch-size", dest="batch_size", type=int, help="train batch size (default: train.batch_size)")
    fit.add_argument("--image-size", dest="image_size", type=int, help="resize images to this side for training")
    fit.add_argument(
        "--seed",
        type=int,
        help="seed of every random draw: split of validation cases, SMOTE, "
        "shuffles, channel orders, augmentation, weights (default: train.seed)",
    )
    fit.add_argument("--workers", type=int, help="DataLoader workers for the test stream")
    _add_registry(fit)
    fit.set_defaults(func=cmd_fit)

    evaluate = sub.add_parser(
        "evaluate",
        help="score the test split with a saved checkpoint",
        description="Load a checkpoint (weights_only) and write the same evaluation files as fit.",
    )
    evaluate.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a checkpoint.pt written by csxa-train fit (loaded with weights_only)",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="output folder for the evaluation files")
    evaluate.add_argument("--variant", help="variant folder or URL (default: the one the checkpoint was trained on)")
    evaluate.add_argument("--workers", type=int, help="DataLoader workers for the test stream")
    _add_registry(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    compare = sub.add_parser(
        "compare",
        help="compare every experiment's test predictions: Table 1 with intervals and paired tests",
        description="Read RESULTS/<experiment>/predictions.csv of every experiment in params.yaml (the same test "
        "cases in each) and write OUT/table.md, table.csv, compare.json and compare.png: accuracy, "
        "precision, recall, F1, specificity, balanced accuracy, AUROC and Brier score with 95%% "
        "intervals (Wilson; stratified bootstrap), the majority-class baseline as a row, and against "
        "the reference experiment the paper's two-proportion z-test (one- and two-sided), the exact "
        "McNemar test and a paired bootstrap interval of the AUROC difference, Holm-corrected; then "
        "the paper's Table 1 with its p-values recomputed. Settings: the `compare` section.",
    )
    compare.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml if present)")
    compare.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="folder holding one folder per experiment (default: results)",
    )
    compare.add_argument(
        "--out", type=Path, default=Path("results/compare"), help="output folder (default: results/compare)"
    )
    compare.add_argument(
        "--reference",
        help="the experiment the others are tested against (default: compare.reference, "
        "else the first experiment on the original variant)",
    )
    compare.add_argument(
        "--operating-point",
        dest="operating_point",
        choices=("0.5", "chosen"),
        help="compare predictions at 0.5 (the paper's) or at each experiment's validation-chosen threshold",
    )
    compare.add_argument("--resamples", type=int, help="bootstrap resamples (default: compare.resamples)")
    compare.add_argument("--seed", type=int, help="bootstrap seed (default: compare.seed)")
    compare.add_argument(
        "--cv",
        type=Path,
        default=None,
        help="also compare the cross-validation results in this folder (results/cv: one folder per "
        "experiment with oof.csv): per-fold metrics, their mean and SD, pooled out-of-fold "
        "metrics with intervals, and the paired t-test across folds, uncorrected (the paper's) "
        "beside Nadeau and Bengio's corrected resampled t-test; writes OUT/cv_table.md, "
        "cv_table.csv, cv_folds.csv, cv.json and cv.png",
    )
    compare.set_defaults(func=cmd_compare)

    landmarks = sub.add_parser(
        "landmarks",
        help="the landmark-measurement baseline: two classifiers on radiographic parameters",
        description="Compute per case the radiographic parameters of the 23 landmarks (C2-C7 Cobb angle, disc "
        "heights and their ratios to the vertebral body heights, vertebral slip), then train a "
        "class-balanced logistic regression and a gradient-boosted tree on the manifest's train split "
        "(less the networks' validation part, which chooses the threshold: train.val_fraction, "
        "train.threshold, train.seed) and score the test split. Writes RESULTS/landmarks_logreg/ and "
        "RESULTS/landmarks_gbt/ with the files of a trained experiment (predictions.csv, metrics.json, "
        "evaluation.json, ...). Settings: the `landmarks` section.",
    )
    landmarks.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml if present)")
    landmarks.add_argument(
        "--manifest",
        type=Path,
        default=Path("data/ingest/manifest.csv"),
        help="the ingest manifest: cases, classes and the split (default: data/ingest/manifest.csv)",
    )
    landmarks.add_argument(
        "--landmarks",
        type=Path,
        default=Path("data/ingest/landmarks.csv"),
        help="the 23 landmarks per case (default: data/ingest/landmarks.csv)",
    )
    landmarks.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="folder to write landmarks_logreg/ and landmarks_gbt/ into (default: results)",
    )
    landmarks.add_argument(
        "--measurements", type=Path, default=None, help="also write the per-case measurement table (CSV) here"
    )
    landmarks.set_defaults(func=cmd_landmarks)

    cv = sub.add_parser(
        "cv",
        help="cross-validate one experiment by case over the train split (folds from csxa-data folds)",
        description="For every fold of data/folds.csv (by case, over the train split; every repeat), train the "
        "experiment as fit does on the other folds' cases (its validation part carved from them chooses "
        "the threshold; normalisation from those cases) and score the fold's cases. The test split is "
        "not read. Writes OUT/oof.csv (every train case once per repeat: key, number, label, repeat, "
        "fold, score, threshold, pred, pred_at_threshold) and OUT/folds.json (per-fold counts, threshold "
        "and metrics). Settings as for fit.",
    )
    cv.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml if present)")
    cv.add_argument("--experiment", help="name of an experiments.<name> section")
    cv.add_argument("--variant", help="variant folder or URL (default: data/variants/<the experiment's variant>)")
    cv.add_argument(
        "--folds",
        type=Path,
        default=Path("data/folds.csv"),
        help="the fold table written by csxa-data folds (default: %(default)s)",
    )
    cv.add_argument(
        "--out", type=Path, default=None, help="output folder (default with --experiment: results/cv/<experiment>)"
    )
    for key, kind, text in (
        ("model", str, "model name"),
        ("weights", str, "imagenet, none or a state dict path"),
        ("balance", str, "smote, weighted_sampler, class_weighted_loss or none"),
        ("epochs", int, "passes per fold"),
        ("batch_size", int, "train batch size"),
        ("image_size", int, "resize images to this side"),
        ("seed", int, "seed of every draw"),
        ("workers", int, "unused by cv (kept for the shared settings)"),
    ):
        cv.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, help=f"{text} (default: train.{key})")
    cv.set_defaults(func=cmd_cv, registry=None, rev=None)

    cv_landmarks = sub.add_parser(
        "cv-landmarks",
        help="cross-validate the landmark baseline's two classifiers on the same folds",
        description="The landmarks command's two classifiers, fold by fold on data/folds.csv: trained on the other "
        "folds' train cases (less the validation part, which chooses the threshold), scoring the fold's. "
        "Writes RESULTS/landmarks_logreg/ and RESULTS/landmarks_gbt/ with oof.csv and folds.json.",
    )
    cv_landmarks.add_argument(
        "--params", type=Path, default=None, help="params file (default: ./params.yaml if present)"
    )
    cv_landmarks.add_argument(
        "--manifest", type=Path, default=Path("data/ingest/manifest.csv"), help="default: %(default)s"
    )
    cv_landmarks.add_argument(
        "--landmarks", type=Path, default=Path("data/ingest/landmarks.csv"), help="default: %(default)s"
    )
    cv_landmarks.add_argument("--folds", type=Path, default=Path("data/folds.csv"), help="default: %(default)s")
    cv_landmarks.add_argument("--results", type=Path, default=Path("results/cv"), help="default: %(default)s")
    cv_landmarks.set_defaults(func=cmd_cv_landmarks)

    issues = sub.add_parser(
        "label-issues",
        help="rank likely label errors from cross-validation's out-of-fold predictions (cleanlab)",
        description="Pools the out-of-fold probabilities of the cross-validation results named in params.yaml "
        "`quality.sources` (mean over repeats, then sources), ranks the train cases by cleanlab's label quality "
        "(lowest first: the sheet's class is the one the models doubt most) and flags those confident learning "
        "counts as likely wrong. Writes OUT/label_issues.csv (rank, case, given and suggested class, quality, "
        "pooled probability, flagged), label_issues.json and .md (with precision and recall at k against the "
        "flips a synthetic release injected, from faults.csv) and label_issues.png (the top cases, landmarks drawn).",
    )
    issues.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml if present)")
    issues.add_argument("--cv", type=Path, default=Path("results/cv"), help="default: %(default)s")
    issues.add_argument("--manifest", type=Path, default=Path("data/ingest/manifest.csv"), help="default: %(default)s")
    issues.add_argument(
        "--landmarks", type=Path, default=Path("data/ingest/landmarks.csv"), help="default: %(default)s"
    )
    issues.add_argument("--release", type=Path, default=None, help="the release (default: params ingest.release)")
    issues.add_argument("--out", type=Path, default=Path("results/quality"), help="default: %(default)s")
    issues.set_defaults(func=cmd_label_issues)

    explain = sub.add_parser(
        "explain",
        help="where a model looks: Grad-CAM over the test split, a contact sheet and the heat in the spine",
        description="Score the test split of the checkpoint's variant, compute a Grad-CAM map (grad-cam package) of "
        "the predicted class (at the threshold the run chose) for every test case, and write "
        "OUT/gradcam.png (the most confident true positives, false positives and false negatives, the "
        "landmark box drawn), gradcam.csv (per case: the share of the heat inside the landmark box and "
        "the share of the image the box covers) and gradcam.json (their means).",
    )
    explain.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint.pt written by csxa-train fit")
    explain.add_argument(
        "--all",
        action="store_true",
        help="every experiment of params.yaml (RESULTS/EXPERIMENT/checkpoint.pt) in one process, "
        "plus the summary table RESULTS/gradcam.md: the `explain` DVC stage",
    )
    explain.add_argument("--params", type=Path, default=None, help="with --all: params file (default: ./params.yaml)")
    explain.add_argument(
        "--results", type=Path, default=Path("results"), help="with --all: results folder (default: results)"
    )
    explain.add_argument("--out", type=Path, default=None, help="output folder (default: the checkpoint's folder)")
    explain.add_argument("--variant", help="variant folder or URL (default: the one the checkpoint was trained on)")
    explain.add_argument(
        "--per-kind",
        dest="per_kind",
        type=whole_number(1, 100),
        default=4,
        help="cases per row of the contact sheet: true positives, false positives, false negatives (default: 4)",
    )
    explain.add_argument("--quiet", action="store_true", help="no progress bar")
    explain.set_defaults(func=cmd_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input ends in one ``csxa-train: error:`` line and exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_command(
        PROG, _with_sources(args.func), args, "the last checkpoint is kept and the next run resumes from it"
    )


def _with_sources(func):
    """Run ``func`` with the source limits (timeouts, retries, size caps) of params.yaml's ``sources``."""

    def run(args: argparse.Namespace) -> int:
        from csxa_data.shards.sources import configure_from_params

        configure_from_params(getattr(args, "params", None))
        return func(args)

    return run


if __name__ == "__main__":
    sys.exit(main())

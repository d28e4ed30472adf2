"""``csxa-train``: train and evaluate on a published variant (local folder or http:// URL).

Run under ``torchrun --nproc_per_node N`` for several GPUs (or CPU processes): the same command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from csxa_data.errors import CsxaError, run_command

PROG = "csxa-train"


def _train_settings(args: argparse.Namespace) -> dict:
    """The ``train`` section, the experiment's overrides, then the command line's."""
    from csxa_data.params import load_section

    settings = dict(load_section(args.params, "train"))
    if args.experiment:
        experiments = load_section(args.params, "experiments")
        if args.experiment not in experiments:
            raise CsxaError(f"no experiment {args.experiment!r}; known: {sorted(experiments)}",
                            path=args.params or "params.yaml")
        experiment = experiments[args.experiment] or {}
        if not isinstance(experiment, dict):
            raise CsxaError(f"experiments.{args.experiment} must be a mapping of settings", path=args.params or "params.yaml")
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
    settings["variant"] = args.variant
    return settings


def cmd_fit(args: argparse.Namespace) -> int:
    from .fit import TrainConfig, fit

    config = TrainConfig.from_dict(_train_settings(args))
    fit(config, args.out, title=args.experiment or Path(args.out).name)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .fit import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, args.out, variant=args.variant, workers=args.workers)
    if metrics is not None:
        print(f"evaluate: balanced accuracy {metrics['balanced_accuracy']:.3f}, accuracy {metrics['accuracy']:.3f} "
              f"(baseline {metrics['baseline']['accuracy']:.3f}); wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``csxa-train`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train the seed paper's classifiers on a published CSXA variant and evaluate them "
                               "honestly (balanced accuracy, sensitivity, specificity, AUROC and the majority "
                               "baseline beside accuracy). Reads only the variant's shards, shards.json and "
                               "stats.json. Several GPUs or processes: torchrun --nproc_per_node N -m csxa_train ...")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit", help="train one experiment, checkpoint every epoch, evaluate on the test split",
        description="Stream the variant's train split into memory (balanced as `balance` says: smote, "
                    "weighted_sampler, class_weighted_loss or none), train with Adam and a step decay, the "
                    "paper's flips and rotations on train batches only, then score every test sample once. "
                    "Writes OUT/checkpoint.pt (resumed if the run is interrupted), metrics.json, predictions.csv, "
                    "roc.csv, confusion.csv, train_log.csv and report.png. Settings: the `train` section of "
                    "params.yaml, then experiments.<name>, then these options.")
    fit.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml if present)")
    fit.add_argument("--experiment", help="name of an experiments.<name> section")
    fit.add_argument("--variant", help="variant folder or http:// URL (default: data/variants/<the experiment's variant>)")
    fit.add_argument("--out", type=Path, required=True, help="output folder")
    fit.add_argument("--model", help="resnet50, vgg19, resnet18, vgg11, smallcnn, ...")
    fit.add_argument("--weights", help="imagenet, none, or a path to a local torchvision state dict")
    fit.add_argument("--balance", help="smote, weighted_sampler, class_weighted_loss or none")
    fit.add_argument("--epochs", type=int)
    fit.add_argument("--batch-size", dest="batch_size", type=int)
    fit.add_argument("--image-size", dest="image_size", type=int, help="resize images to this side for training")
    fit.add_argument("--seed", type=int)
    fit.add_argument("--workers", type=int, help="DataLoader workers for the test stream")
    fit.set_defaults(func=cmd_fit)

    evaluate = sub.add_parser(
        "evaluate", help="score the test split with a saved checkpoint",
        description="Load a checkpoint (weights_only) and write the same evaluation files as fit.")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--out", type=Path, required=True)
    evaluate.add_argument("--variant", help="variant folder or URL (default: the one the checkpoint was trained on)")
    evaluate.add_argument("--workers", type=int, help="DataLoader workers for the test stream")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input ends in one ``csxa-train: error:`` line and exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_command(PROG, _with_sources(args.func), args, "the last checkpoint is kept and the next run resumes from it")


def _with_sources(func):
    """Run ``func`` with the source limits (timeouts, retries, size caps) of params.yaml's ``sources``."""
    def run(args: argparse.Namespace) -> int:
        from csxa_data.sources import configure_from_params

        configure_from_params(getattr(args, "params", None))
        return func(args)
    return run


if __name__ == "__main__":
    sys.exit(main())

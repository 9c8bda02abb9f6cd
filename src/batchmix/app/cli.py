"""The ``batchmix`` command line: train, evaluate, compare, cam, show and demo.

Errors in the user's input (missing data, unknown names, occupied output folders, damaged
checkpoints) are printed as ``batchmix: error: ...`` with exit status 2, and leave files as they
were. See ``docs/APP.md`` for a tour.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from batchmix.app.config import (
    DATASETS,
    METHODS,
    MODELS,
    OPTIMIZERS,
    RUNTIME_FIELDS,
    SCHEDULES,
    TrainConfig,
    parse_mix_weights,
)
from batchmix.app.errors import AppError, app_message

__all__ = ["DEMO", "build_parser", "main"]

#: The built-in comparison behind ``batchmix demo`` (and ``make demo``): four methods on a
#: Fashion-MNIST subset, sized for about ten minutes on two CPU cores.
DEMO: dict[str, Any] = {
    "data": "fashion-mnist",
    "model": "small-resnet",
    "width": 16,
    "train_subset": 3000,
    "test_subset": 2000,
    "epochs": 12,
    "batch_size": 128,
    "lr": 0.1,
    "seeds": 2,
    "methods": "none,mixup,cutout,cutmix",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text}")
    return value


def _indices(text: str) -> list[int]:
    try:
        indices = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        indices = []
    if not indices:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated indices such as 0,5,9, got {text!r}"
        )
    return indices


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )


def _add_data(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data", choices=DATASETS, default="fashion-mnist", help="dataset (default: %(default)s)"
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="folder with the data: Fashion-MNIST idx files, an image folder, or where to download CIFAR",
    )
    group.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="image side: digits 16, fashion-mnist-loc canvas 64, imagefolder 64 by default",
    )
    group.add_argument(
        "--train-subset",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on a fixed random N images",
    )
    group.add_argument(
        "--test-subset",
        type=_positive_int,
        default=None,
        metavar="N",
        help="test on a fixed random N images",
    )
    group.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="imagefolder: leave unreadable files out with a warning (default: stop and name them)",
    )
    group.add_argument(
        "--lazy-images",
        action="store_true",
        help="imagefolder: decode each image when it is read, in the DataLoader workers, "
        "instead of once into memory (for folders too large for memory; with --workers)",
    )
    group.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="never fetch data from the network",
    )
    group.add_argument(
        "--no-augment", dest="augment", action="store_false", help="no random crop and flip"
    )


def _add_training(parser: argparse.ArgumentParser, *, with_method: bool) -> None:
    group = parser.add_argument_group("model and optimisation")
    group.add_argument(
        "--model", choices=MODELS, default="small-resnet", help="(default: %(default)s)"
    )
    group.add_argument(
        "--width",
        type=_positive_int,
        default=32,
        help="small-resnet's first-stage channels (default: 32)",
    )
    group.add_argument("--epochs", type=_positive_int, default=10, help="(default: %(default)s)")
    group.add_argument(
        "--batch-size", type=_positive_int, default=128, help="per process (default: %(default)s)"
    )
    group.add_argument(
        "--optimizer", choices=OPTIMIZERS, default="sgd", help="(default: %(default)s)"
    )
    group.add_argument(
        "--lr", type=float, default=0.1, help="peak learning rate (default: %(default)s)"
    )
    group.add_argument(
        "--momentum", type=float, default=0.9, help="SGD momentum (default: %(default)s)"
    )
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum for SGD")
    group.add_argument("--weight-decay", type=float, default=5e-4, help="(default: %(default)s)")
    group.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="cosine",
        help="learning-rate schedule, stepped per batch (default: %(default)s)",
    )
    mixing = parser.add_argument_group("mixing")
    if with_method:
        mixing.add_argument(
            "--method",
            choices=METHODS,
            default="none",
            help="(default: %(default)s); mix = weighted random choice, see --mix-weights",
        )
    mixing.add_argument(
        "--alpha", type=float, default=1.0, help="Beta(α, α) of MixUp and CutMix (default: 1.0)"
    )
    mixing.add_argument(
        "--mix-prob",
        type=float,
        default=1.0,
        help="probability of mixing a batch (or a sample, or a pair, in those modes) (default: 1.0)",
    )
    mixing.add_argument(
        "--mix-mode",
        choices=("batch", "pair", "sample"),
        default="batch",
        help="one λ per batch, per pair (timm's pair mode: samples i and B−1−i swap with one λ "
        "and box; --method mix then draws the method per pair) or per sample (default: batch)",
    )
    mixing.add_argument(
        "--per-sample",
        dest="mix_mode",
        action="store_const",
        const="sample",
        help="same as --mix-mode sample",
    )
    mixing.add_argument(
        "--label-smoothing", type=float, default=0.0, help="ε, applied before mixing (default: 0)"
    )
    mixing.add_argument(
        "--cutout-size",
        type=_positive_int,
        default=None,
        help="CutOut square side in pixels (default: half the image side)",
    )
    mixing.add_argument(
        "--mix-weights",
        type=str,
        default="mixup=0.5,cutmix=0.5",
        help="--method mix: METHOD=WEIGHT pairs of mixers (default: %(default)s)",
    )
    mixing.add_argument(
        "--mix-off-epoch",
        type=int,
        default=0,
        metavar="N",
        help="mix only in the first N epochs (0: always)",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="(default: 0)")
    run.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader worker processes; the mix runs in them (default: 0)",
    )
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    run.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    run.add_argument("--overwrite", action="store_true", help="replace a run already in --out")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("batchmix")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="batchmix",
        description="Train, compare and explain classifiers trained with CutMix, MixUp and CutOut.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a classifier",
        description="Train a classifier with a mixing method; metrics go to OUT/metrics.jsonl, checkpoints to OUT/checkpoint.pt. Under torchrun it trains with DistributedDataParallel.",
    )
    _add_data(train)
    _add_training(train, with_method=True)
    train.add_argument("--out", default="out/train", help="run folder (default: %(default)s)")
    _add_runtime(train)

    evaluate = commands.add_parser(
        "evaluate",
        help="test accuracy of a checkpoint",
        description="Load a checkpoint (file or run folder) and report its accuracy on the test split.",
    )
    evaluate.add_argument("checkpoint", help="checkpoint.pt or a run folder")
    evaluate.add_argument("--data-dir", default=None, help="where the data is now, if it moved")
    evaluate.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="never fetch data from the network",
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_runtime(evaluate)

    compare = commands.add_parser(
        "compare",
        help="train several methods and seeds, write a report",
        description="Train every method with every seed, then write OUT/results.json and OUT/report/ (report.md, curves, mixed-image grid, CAM figure).",
    )
    compare.add_argument(
        "--methods",
        default="none,mixup,cutout,cutmix",
        help="comma-separated (default: %(default)s)",
    )
    compare.add_argument(
        "--seeds",
        type=_positive_int,
        default=3,
        help="seeds per method, starting at --seed (default: 3)",
    )
    _add_data(compare)
    _add_training(compare, with_method=False)
    compare.add_argument(
        "--out", default="out/compare", help="comparison folder (default: %(default)s)"
    )
    compare.add_argument(
        "--cam-images",
        type=_positive_int,
        default=8,
        help="test images in the CAM figure (default: 8)",
    )
    compare.add_argument(
        "--loc-limit",
        type=_positive_int,
        default=1000,
        help="test images for localisation accuracy (default: 1000)",
    )
    compare.add_argument(
        "--photos", action="store_true", help="add the grid on scikit-image's photos to the report"
    )
    _add_runtime(compare)

    cam = commands.add_parser(
        "cam",
        help="class activation maps of a checkpoint",
        description="CAM overlays for test images; on data with true boxes (fashion-mnist-loc) also the weakly-supervised localisation accuracy.",
    )
    cam.add_argument("checkpoint", help="checkpoint.pt or a run folder")
    cam.add_argument(
        "--images",
        type=_indices,
        default=None,
        metavar="I,J,...",
        help="test indices (default: one per class)",
    )
    cam.add_argument(
        "--count",
        type=_positive_int,
        default=8,
        help="images when --images is not given (default: 8)",
    )
    cam.add_argument(
        "--threshold",
        type=_fraction,
        default=0.2,
        help="fraction of the [0, 1]-scaled map's peak for the box, in (0, 1] (default: 0.2)",
    )
    cam.add_argument(
        "--loc-limit",
        type=_positive_int,
        default=None,
        help="test images for localisation (default: all)",
    )
    cam.add_argument(
        "--out", default=None, help="folder for cam.png and cam.json (default: RUN/cam)"
    )
    cam.add_argument("--overwrite", action="store_true", help="replace cam.png and cam.json")
    cam.add_argument("--data-dir", default=None, help="where the data is now, if it moved")
    cam.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="never fetch data from the network",
    )
    _add_runtime(cam)

    show = commands.add_parser(
        "show",
        help="the Original / MixUp / CutOut / CutMix grid",
        description="Draw the Original / MixUp / CutOut / CutMix grid on scikit-image's bundled photos or on a folder of images.",
    )
    show.add_argument(
        "--images",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of images (default: scikit-image's photos)",
    )
    show.add_argument("--count", type=_positive_int, default=4, help="images (default: 4)")
    show.add_argument(
        "--size", type=_positive_int, default=192, help="side in pixels (default: 192)"
    )
    show.add_argument("--seed", type=int, default=0, help="(default: 0)")
    show.add_argument(
        "--out",
        type=Path,
        default=Path("out/show"),
        help="folder for mixed_grid.png (default: %(default)s)",
    )
    show.add_argument("--overwrite", action="store_true", help="replace an existing grid")

    demo = commands.add_parser(
        "demo",
        help="the built-in comparison behind `make demo`",
        description="Compare none, mixup, cutout and cutmix on a Fashion-MNIST subset (about ten minutes on two CPU cores) and print where the report is.",
    )
    demo.add_argument("--out", default="out/demo", help="(default: %(default)s)")
    demo.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST idx files")
    demo.add_argument(
        "--epochs", type=_positive_int, default=DEMO["epochs"], help="(default: %(default)s)"
    )
    demo.add_argument(
        "--seeds", type=_positive_int, default=DEMO["seeds"], help="(default: %(default)s)"
    )
    demo.add_argument(
        "--train-subset",
        type=_positive_int,
        default=DEMO["train_subset"],
        help="(default: %(default)s)",
    )
    demo.add_argument(
        "--test-subset",
        type=_positive_int,
        default=DEMO["test_subset"],
        help="(default: %(default)s)",
    )
    demo.add_argument("--workers", type=int, default=0, help="DataLoader workers (default: 0)")
    demo.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="never fetch data from the network",
    )
    demo.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    demo.add_argument(
        "--resume", action="store_true", help="continue (or just re-report) an earlier demo"
    )
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo")
    demo.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads (default: 1, which stays fast when other work shares the cores)",
    )
    return parser


def _train_config(args: argparse.Namespace, **fixed: Any) -> TrainConfig:
    values = {
        "data": args.data,
        "data_dir": args.data_dir,
        "image_size": args.image_size,
        "train_subset": args.train_subset,
        "test_subset": args.test_subset,
        "skip_bad_images": args.skip_bad_images,
        "lazy_images": args.lazy_images,
        "download": args.download,
        "augment": args.augment,
        "model": args.model,
        "width": args.width,
        "alpha": args.alpha,
        "mix_prob": args.mix_prob,
        "mix_mode": args.mix_mode,
        "label_smoothing": args.label_smoothing,
        "cutout_size": args.cutout_size,
        "mix_weights": parse_mix_weights(args.mix_weights),
        "mix_off_epoch": args.mix_off_epoch,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "nesterov": args.nesterov,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "seed": args.seed,
        "workers": args.workers,
        "device": args.device,
        "progress": args.progress,
        "out": args.out,
    }
    values.update(fixed)
    return TrainConfig(**values)


def _warn_unused(config: TrainConfig, methods: Sequence[str], *, grid: bool = False) -> None:
    """Names the options given that this run (or comparison) does not use (once, on rank 0)."""
    if os.environ.get("RANK", "0") != "0":
        return
    for note in config.unused_options(methods, grid=grid):
        option = note.partition(":")[0].removeprefix("--").replace("-", "_")
        resume = (
            "" if option in RUNTIME_FIELDS else " (a --resume of this run must still repeat it)"
        )
        warnings.warn(f"{note}; it has no effect here{resume}.", stacklevel=2)


def _train(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Trains one model (under torchrun: one rank of a DDP run)."""
    from batchmix.app.train import train

    config = _train_config(args, method=args.method)
    _warn_unused(config, [args.method])
    try:
        summary = train(config, resume=args.resume, overwrite=args.overwrite)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if summary["final"]:
        print(
            f"Finished: test top-1 error {summary['final']['test_error']:.2f}%; run folder {config.out}"
        )
    return 0


def _evaluate(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Prints the test accuracy of a checkpoint."""
    import torch

    from batchmix.app.train import evaluate, load_trained

    model, data, payload = load_trained(
        args.checkpoint, data_dir=args.data_dir, download=args.download
    )
    metrics = evaluate(model, data.test, torch.device("cpu"))
    metrics = {"epoch": payload["epoch"], "images": len(data.test), **metrics}
    if args.json:
        print(json.dumps(metrics))
    else:
        print(
            f"{args.checkpoint}: epoch {payload['epoch']}, {len(data.test)} test images: "
            f"top-1 {metrics['test_top1']:.2f}% (error {metrics['test_error']:.2f}%), "
            f"top-5 {metrics['test_top5']:.2f}%, loss {metrics['test_loss']:.4f}"
        )
    return 0


def _compare(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Runs a comparison (``compare``, or ``demo`` with its fixed setting) and its report."""
    from batchmix.app.report import command_line, compare, parse_methods

    if args.command == "compare":
        methods = parse_methods(args.methods)
        config = _train_config(args, method="none")
        _warn_unused(config, methods, grid=True)
        seeds, cam_images, loc_limit, photos = (
            args.seeds,
            args.cam_images,
            args.loc_limit,
            args.photos,
        )
    else:
        methods = parse_methods(str(DEMO["methods"]))
        config = TrainConfig(
            data=str(DEMO["data"]),
            data_dir=args.data_dir,
            download=args.download,
            model=str(DEMO["model"]),
            width=int(DEMO["width"]),
            train_subset=args.train_subset,
            test_subset=args.test_subset,
            epochs=args.epochs,
            batch_size=int(DEMO["batch_size"]),
            lr=float(DEMO["lr"]),
            workers=args.workers,
            progress=args.progress,
            out=args.out,
        )
        seeds, cam_images, loc_limit, photos = args.seeds, 8, 1000, True
    results = compare(
        config,
        methods,
        seeds,
        Path(args.out),
        resume=args.resume,
        overwrite=args.overwrite,
        cam_count=cam_images,
        loc_limit=loc_limit,
        photos=photos,
        command=command_line(argv),
    )
    for method, entry in results["summary"].items():
        spread = entry["test_error_std"]
        print(
            f"{method:>7}: test top-1 error {entry['test_error_mean']:.2f}%"
            + (f" ± {spread:.2f}" if spread is not None else "")
            + f" over {entry['seeds']} seed(s)"
        )
    print(f"Report: {Path(args.out) / 'report' / 'report.md'}")
    return 0


def _cam(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Draws CAM overlays and measures localisation where true boxes exist."""
    from batchmix.app.checkpoint import resolve_checkpoint
    from batchmix.app.report import run_cam

    checkpoint = resolve_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else checkpoint.parent / "cam"
    result = run_cam(
        str(checkpoint),
        out,
        indices=args.images,
        count=args.count,
        threshold=args.threshold,
        loc_limit=args.loc_limit,
        data_dir=args.data_dir,
        download=args.download,
        overwrite=args.overwrite,
    )
    if "localisation" in result:
        loc = result["localisation"]
        print(
            f"Localisation on {int(loc['images'])} test images: GT-known {loc['gt_known_loc']:.2f}%, "
            f"top-1 {loc['top1_loc']:.2f}%, mean IoU {loc['mean_iou']:.3f}"
        )
    print(f"CAM figure: {result['figure']}")
    return 0


def _show(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Draws the mixed-image grid on photos."""
    from batchmix.app.report import check_writable
    from batchmix.app.show import run_show

    check_writable(args.out, "the grid")  # before any drawing
    path = run_show(
        args.out / "mixed_grid.png",
        folder=args.images,
        size=args.size,
        count=args.count,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"Wrote {path}")
    return 0


def _run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """Runs the parsed command; :class:`AppError` reaches :func:`main`."""
    world = os.environ.get("WORLD_SIZE", "1")
    if args.command != "train" and world != "1":
        raise AppError(
            f"{args.command} runs in one process, but torchrun started {world}; under torchrun "
            "use train (one run over all processes), and run the other commands without it."
        )
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    commands = {
        "train": _train,
        "evaluate": _evaluate,
        "compare": _compare,
        "demo": _compare,
        "cam": _cam,
        "show": _show,
    }
    return commands[args.command](args, argv)


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    return f"batchmix: warning: {message}\n"


def _describe_os_error(error: OSError) -> str:
    """One line for an operating-system error, naming the path(s) it concerns."""
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    reason = error.strerror or str(error) or type(error).__name__
    hints = {
        errno.ENOTDIR: "; expected a folder, but a part of the path is a file",
        errno.EEXIST: "; expected a folder or a new name, but a file is there",
        errno.EACCES: "; expected a place batchmix may write to",
        errno.EROFS: "; expected a place batchmix may write to",
    }
    hint = hints.get(error.errno, "") if error.errno is not None else ""
    return f"cannot use {paths}: {reason}{hint}." if paths else f"{reason}{hint}."


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 2 bad input or usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    previous = warnings.formatwarning
    warnings.formatwarning = _format_warning
    try:
        return _run(args, argv)
    except AppError as error:
        print(f"batchmix: error: {app_message(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # an output the file system refuses: unwritable, a file in the way
        print(f"batchmix: error: {_describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = args.command in ("train", "compare", "demo")
        hint = (
            "; rerun with --resume to continue after the last finished epoch" if resumable else ""
        )
        print(f"batchmix: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous

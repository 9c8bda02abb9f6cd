"""Reproduces the seed's two claims at small scale and writes the results page.

1. Classification in the data-scarce regime: Fashion-MNIST with a small training subset, the
   small ResNet, a fixed schedule, several mixing methods and seeds; plus test error against
   training-set size for the baseline and CutMix.
2. Localisation: ``fashion-mnist-loc`` (each item on a larger canvas with its true box), CAM
   top-1 and GT-known localisation accuracy (IoU ≥ 0.5) per method.

Every table is produced by ``batchmix compare`` runs (commands recorded in the page). A run
whose ``results.json`` already exists with the same command is reused, so an interrupted
reproduction continues where it stopped.

    python experiments/evidence.py --out out/evidence --publish docs   # the full page
    python experiments/evidence.py --out /tmp/mini --mini --data-dir D  # a miniature (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from batchmix.app.report import METHOD_TITLES as TITLES

# The paper's numbers (top-1 error %, and CUB-200 localisation) to print beside ours.
PAPER_CLASSIFICATION = {
    "CIFAR-100, PyramidNet-200, 300 epochs": {
        "none": 16.45,
        "mixup": 15.63,
        "cutout": 16.53,
        "cutmix": 14.23,
    },
    "ImageNet, ResNet-50, 300 epochs": {
        "none": 23.68,
        "mixup": 22.58,
        "cutout": 22.93,
        "cutmix": 21.40,
    },
}
PAPER_LOCALISATION = (
    'CUB-200, ResNet-50, weakly-supervised localisation accuracy ("Loc Acc", cited in the '
    "localisation literature as top-1 localisation, e.g. by Choe et al. 2020): baseline 49.41, "
    "CutMix 54.81"
)


@dataclass(frozen=True)
class Scale:
    """Sizes of one reproduction."""

    train: int
    sizes: tuple[int, ...]
    test: int
    epochs: int
    short_epochs: int
    loc_train: int
    loc_test: int
    loc_epochs: int
    loc_size: int
    seeds: int
    width: int
    methods: tuple[str, ...]
    loc_methods: tuple[str, ...]


FULL = Scale(
    train=1000,
    sizes=(500, 1000, 2000),
    test=2000,
    epochs=100,
    short_epochs=30,
    loc_train=1000,
    loc_test=1000,
    loc_epochs=30,
    loc_size=48,
    seeds=3,
    width=16,
    methods=("none", "mixup", "cutout", "cutmix", "resizemix", "fmix"),
    loc_methods=("none", "mixup", "cutout", "cutmix"),
)
MINI = Scale(
    train=48,
    sizes=(32, 48),
    test=32,
    epochs=2,
    short_epochs=1,
    loc_train=32,
    loc_test=16,
    loc_epochs=1,
    loc_size=32,
    seeds=2,
    width=4,
    methods=("none", "cutmix"),
    loc_methods=("none", "cutmix"),
)


def compare_command(
    out: Path,
    *,
    data: str,
    methods: tuple[str, ...],
    train: int,
    test: int,
    epochs: int,
    scale: Scale,
    data_dir: str | None,
    image_size: int | None = None,
) -> list[str]:
    """The ``batchmix compare`` command of one table (or one point of the size curve)."""
    command = [
        sys.executable, "-m", "batchmix", "compare",
        "--data", data,
        "--methods", ",".join(methods),
        "--seeds", str(scale.seeds),
        "--train-subset", str(train),
        "--test-subset", str(test),
        "--epochs", str(epochs),
        "--width", str(scale.width),
        "--batch-size", "64",
        "--lr", "0.1",
        "--schedule", "cosine",
        "--threads", "1",
        "--no-progress",
        "--no-download",
        "--out", str(out),
    ]  # fmt: skip
    if image_size is not None:
        command += ["--image-size", str(image_size)]
    if data_dir is not None:
        command += ["--data-dir", data_dir]
    return command


def run(command: list[str], out: Path, log: Path) -> dict[str, Any]:
    """Runs ``command`` unless ``out`` already holds its finished results; returns them."""
    results_file = out / "results.json"
    recorded = out / "evidence_command.json"
    if (
        results_file.exists()
        and recorded.exists()
        and json.loads(recorded.read_text()) == command[1:]
    ):
        return dict(json.loads(results_file.read_text()))
    if out.exists():
        command = [*command, "--resume"]
    started = time.perf_counter()
    with log.open("a") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT)
    recorded.write_text(json.dumps(command[1:] if command[-1] != "--resume" else command[1:-1]))
    results = dict(json.loads(results_file.read_text()))
    results["evidence_wall_s"] = time.perf_counter() - started
    return results


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _shell(command: list[str]) -> str:
    return " ".join(["python" if part == sys.executable else part for part in command])


def size_figure(path: Path, curves: dict[str, list[tuple[int, float, float]]]) -> None:
    """Test error against training-set size, one line per method, error bars = 1 std."""
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for method, points in curves.items():
        sizes = [p[0] for p in points]
        axis.errorbar(
            sizes,
            [p[1] for p in points],
            yerr=[p[2] for p in points],
            marker="o",
            capsize=3,
            label=TITLES[method],
        )
    axis.set_xscale("log")
    axis.set_xticks(sorted({p[0] for pts in curves.values() for p in pts}))
    axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel("training images")
    axis.set_ylabel("test top-1 error (%)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, one thread per run"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("out/evidence"))
    parser.add_argument("--mini", action="store_true", help="tiny sizes, for tests")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST idx files")
    parser.add_argument("--jobs", type=int, default=2, help="compare commands run at once")
    parser.add_argument(
        "--publish", type=Path, default=None, help="copy RESULTS.md and figures here"
    )
    args = parser.parse_args(argv)
    scale = MINI if args.mini else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "evidence.log"

    def table(name: str, **kwargs: Any) -> tuple[list[str], Path]:
        out = args.out / name
        return compare_command(out, scale=scale, data_dir=args.data_dir, **kwargs), out

    # Submitted longest first, so that the workers finish at about the same time.
    jobs = {
        "classification": table(
            f"classification-{scale.epochs}ep",
            data="fashion-mnist",
            methods=scale.methods,
            train=scale.train,
            test=scale.test,
            epochs=scale.epochs,
        ),
    }
    for size in sorted(scale.sizes, reverse=True):
        if size != scale.train:
            jobs[f"size-{size}"] = table(
                f"size-{size}-{scale.epochs}ep",
                data="fashion-mnist",
                methods=("none", "cutmix"),
                train=size,
                test=scale.test,
                epochs=scale.epochs,
            )
    jobs |= {
        "short": table(
            f"classification-{scale.short_epochs}ep",
            data="fashion-mnist",
            methods=scale.methods,
            train=scale.train,
            test=scale.test,
            epochs=scale.short_epochs,
        ),
        "localisation": table(
            f"localisation-{scale.loc_epochs}ep",
            data="fashion-mnist-loc",
            methods=scale.loc_methods,
            train=scale.loc_train,
            test=scale.loc_test,
            epochs=scale.loc_epochs,
            image_size=scale.loc_size,
        ),
    }
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            name: pool.submit(run, command, out, log) for name, (command, out) in jobs.items()
        }
        results = {name: future.result() for name, future in futures.items()}

    page = write_page(args.out, scale, jobs, results)
    if args.publish is not None:
        figures = args.publish / "results"
        figures.mkdir(parents=True, exist_ok=True)
        for source, target in (
            (args.out / "error_vs_size.png", figures / "error_vs_size.png"),
            (
                args.out / f"classification-{scale.epochs}ep" / "report" / "cam.png",
                figures / "classification_cam.png",
            ),
            (
                args.out / f"localisation-{scale.loc_epochs}ep" / "report" / "cam.png",
                figures / "localisation_cam.png",
            ),
            (
                args.out / f"classification-{scale.epochs}ep" / "report" / "curves.png",
                figures / "classification_curves.png",
            ),
        ):
            shutil.copyfile(source, target)
        (args.publish / "RESULTS.md").write_text(
            page.replace("](", "](results/").replace("](results/http", "](http")
        )
    print(f"Wrote {args.out / 'RESULTS.md'}")
    return 0


def _difference(
    summary: dict[str, Any], method: str, key: str, std_key: str
) -> tuple[float, float]:
    """``method`` minus the baseline, and the combined standard deviation of the two means."""
    a, b = summary[method], summary["none"]
    spread = ((a.get(std_key) or 0.0) ** 2 + (b.get(std_key) or 0.0) ** 2) ** 0.5
    return a[key] - b[key], spread


def _fit_sentence(results: dict[str, Any], epochs: int) -> str:
    """How far the baseline's last-epoch training loss lies under its test loss."""
    last = [run["history"][-1] for run in results["runs"] if run["method"] == "none"]
    train = sum(entry["train_loss"] for entry in last) / len(last)
    test = sum(entry["test_loss"] for entry in last) / len(last)
    return (
        f"After {epochs} epochs the baseline's training loss is {train:.2f} and its test loss "
        f"{test:.2f} (cross-entropy, mean over seeds)."
    )


def _versus_baseline(summary: dict[str, Any], method: str) -> str:
    """``method``'s test error against the baseline's, in words, with the spread of the seeds."""
    delta, spread = _difference(summary, method, "test_error_mean", "test_error_std")
    if delta == 0:
        return "equal to the baseline's"
    direction = "lower" if delta < 0 else "higher"
    size = f"{abs(delta):.2f} points (± {spread:.2f})"
    if abs(delta) > 2 * spread:
        return f"{direction} than the baseline's by {size}, more than twice the seeds' spread"
    return f"{direction} than the baseline's by {size}, within twice the seeds' spread"


def findings(
    classification: dict[str, Any],
    short: dict[str, Any],
    localisation: dict[str, Any],
    curves: dict[str, list[tuple[int, float, float]]],
    scale: Scale,
) -> list[str]:
    """Plain statements of what the numbers show, next to what the paper reports."""
    cifar = PAPER_CLASSIFICATION["CIFAR-100, PyramidNet-200, 300 epochs"]
    lines = []
    for method in [m for m in classification if m != "none"]:
        paper = cifar.get(method)
        paper_text = (
            f"; the paper's CIFAR-100 difference is {paper - cifar['none']:+.2f} points"
            if paper is not None
            else ""
        )
        lines.append(
            f"- {TITLES[method]}, {scale.epochs} epochs: test error "
            f"{_versus_baseline(classification, method)}{paper_text}. With {scale.short_epochs} "
            f"epochs: {_versus_baseline(short, method)}."
        )
    gaps = [
        (size, none - cut)
        for (size, none, _), (_, cut, _) in zip(curves["none"], curves["cutmix"], strict=True)
    ]
    gap_text = ", ".join(f"{size} images: {gap:+.2f}" for size, gap in gaps)
    lines.append(
        f"- Baseline error minus CutMix error by training-set size ({scale.epochs} epochs; "
        f"positive means CutMix is better): {gap_text} points."
    )
    if "cutmix" in localisation and "none" in localisation:
        delta, spread = _difference(localisation, "cutmix", "top1_loc", "top1_loc_std")
        known, known_spread = _difference(
            localisation, "cutmix", "gt_known_loc", "gt_known_loc_std"
        )
        lines.append(
            f"- Localisation: CutMix's top-1 localisation accuracy is "
            f"{'above' if delta > 0 else 'below'} the baseline's by {abs(delta):.2f} points "
            f"(± {spread:.2f}); the paper reports +5.40 on CUB-200. GT-known: "
            f"{known:+.2f} points (± {known_spread:.2f})."
        )
    return lines


def write_page(
    out: Path,
    scale: Scale,
    jobs: dict[str, tuple[list[str], Path]],
    results: dict[str, dict[str, Any]],
) -> str:
    """RESULTS.md from the runs' results, with the paper's numbers beside ours."""
    classification = results["classification"]["summary"]
    short = results["short"]["summary"]
    localisation = results["localisation"]["summary"]
    curves: dict[str, list[tuple[int, float, float]]] = {"none": [], "cutmix": []}
    for size in scale.sizes:
        summary = classification if size == scale.train else results[f"size-{size}"]["summary"]
        for method in curves:
            entry = summary[method]
            curves[method].append((size, entry["test_error_mean"], entry["test_error_std"] or 0.0))
    size_figure(out / "error_vs_size.png", curves)

    def wall_of(*names: str) -> str:
        seconds = sum(results[n].get("wall_s", 0.0) for n in names)
        return f"{seconds / 60:.1f} min of compute ({len(names)} compare command(s))"

    def best(summary: dict[str, Any]) -> str:
        return min(summary, key=lambda m: summary[m]["test_error_mean"])

    lines = [
        "# Evidence: the seed's claims at small scale",
        "",
        "Measured with batchmix's own `compare` command on data available offline. "
        f"Machine: {machine()}. All runs: small ResNet (width {scale.width}), SGD with momentum "
        "0.9 and weight decay 5e-4, learning rate 0.1 with a cosine schedule, batch 64, random "
        f"crop and flip, α = 1, every batch mixed (p = 1), {scale.seeds} seeds per method "
        "(mean ± sample standard deviation over the seeds). The best mean of each table is in "
        "bold. Regenerate with `python experiments/evidence.py --out out/evidence --publish "
        f"docs`: {wall_of(*jobs)} in all, run two at a time; finished tables are reused.",
        "",
        f"## 1. Classification with {scale.train} Fashion-MNIST training images",
        "",
        f"{scale.epochs} epochs on a fixed random subset of {scale.train} training images, tested "
        f"on {scale.test} test images. Test top-1 error (%), lower is better. "
        f"{_fit_sentence(results['classification'], scale.epochs)} "
        f"{_fit_sentence(results['short'], scale.short_epochs)}",
        "",
        "| Method | Top-1 error (ours) | Top-5 error (ours) | CIFAR-100 (paper) | ImageNet (paper) |",
        "|---|---|---|---|---|",
    ]
    cifar = PAPER_CLASSIFICATION["CIFAR-100, PyramidNet-200, 300 epochs"]
    imagenet = PAPER_CLASSIFICATION["ImageNet, ResNet-50, 300 epochs"]
    for method, entry in classification.items():
        name = f"**{TITLES[method]}**" if method == best(classification) else TITLES[method]
        lines.append(
            f"| {name} | {_pm(entry['test_error_mean'], entry['test_error_std'])} | "
            f"{_pm(entry['test_top5_error_mean'], entry['test_top5_error_std'])} | "
            f"{cifar.get(method, '–')} | {imagenet.get(method, '–')} |"
        )
    command, _ = jobs["classification"]
    lines += [
        "",
        f"Command: `{_shell(command)}` — {wall_of('classification')}.",
        "",
        "![Training curves](classification_curves.png)",
        "",
        f"### The same with a {scale.short_epochs}-epoch schedule",
        "",
        f"Everything as above but {scale.short_epochs} epochs, to show how the length of the "
        "schedule changes the comparison.",
        "",
        f"| Method | Top-1 error, {scale.short_epochs} epochs | "
        f"Top-1 error, {scale.epochs} epochs |",
        "|---|---|---|",
    ]
    for method, entry in short.items():
        name = f"**{TITLES[method]}**" if method == best(short) else TITLES[method]
        long = classification.get(method)
        long_text = _pm(long["test_error_mean"], long["test_error_std"]) if long else "–"
        lines.append(
            f"| {name} | {_pm(entry['test_error_mean'], entry['test_error_std'])} | {long_text} |"
        )
    command, _ = jobs["short"]
    lines += [
        "",
        f"Command: `{_shell(command)}` — {wall_of('short')}.",
        "",
        "### Test error against training-set size",
        "",
        "| Training images | Baseline | CutMix |",
        "|---|---|---|",
    ]
    for (size, none_mean, none_std), (_, cut_mean, cut_std) in zip(
        curves["none"], curves["cutmix"], strict=True
    ):
        lines.append(f"| {size} | {_pm(none_mean, none_std)} | {_pm(cut_mean, cut_std)} |")
    size_jobs = [n for n in jobs if n.startswith("size-")]
    lines += [
        "",
        "![Test error against training-set size](error_vs_size.png)",
        "",
        f"Commands: the {scale.epochs}-epoch classification command with `--train-subset` set to "
        f"each size and `--methods none,cutmix` — {wall_of(*size_jobs)} for the other sizes.",
        "",
        f"## 2. Localisation on fashion-mnist-loc ({scale.loc_size}×{scale.loc_size} canvas)",
        "",
        f"{scale.loc_epochs} epochs on {scale.loc_train} training images; each Fashion-MNIST item "
        "sits at a random place on the canvas and its true box is known. CAM (Zhou et al. 2016) of "
        "the true class, scaled to [0, 1] and thresholded at 20% of its peak; the box around the "
        "largest connected region localises the image when its IoU with the true box is ≥ 0.5 "
        "(GT-known localisation); top-1 localisation also needs the top-1 prediction to be "
        f"right. Over {scale.loc_test} test images.",
        "",
        "| Method | Top-1 localisation % (ours) | GT-known localisation % (ours) | "
        "Top-1 error % (ours) |",
        "|---|---|---|---|",
    ]
    for method, entry in localisation.items():
        lines.append(
            f"| {TITLES[method]} | {_pm(entry['top1_loc'], entry.get('top1_loc_std'))} | "
            f"{_pm(entry['gt_known_loc'], entry.get('gt_known_loc_std'))} | "
            f"{_pm(entry['test_error_mean'], entry['test_error_std'])} |"
        )
    command, _ = jobs["localisation"]
    lines += [
        "",
        f"Paper: {PAPER_LOCALISATION}.",
        "",
        f"Command: `{_shell(command)}` — {wall_of('localisation')}.",
        "",
        "CAMs of the same test images under each method (seed 0; green: true box, red: box "
        "around the thresholded CAM):",
        "",
        "![CAM per method](localisation_cam.png)",
        "",
        "## 3. What agrees with the paper and what does not",
        "",
        *findings(classification, short, localisation, curves, scale),
        "",
        "Why a small-scale result may differ from the paper's: the paper trains large networks "
        "for 300 epochs on 50,000 (CIFAR) or 1.28 million (ImageNet) colour images; here a small "
        "ResNet sees at most a few thousand 28×28 grey images. Mixing makes the training task "
        "harder, so it can only pay once the baseline has had time to overfit; with a short "
        "schedule it may cost more in fitting than it gains in regularisation (compare the two "
        f"schedules above). With {scale.seeds} seeds the error bars are wide: differences "
        "within about twice the seeds' spread are not evidence either way. The localisation task is synthetic (one "
        "object on a blank canvas), so the CAM box is easy for every method and its accuracy "
        "swings with how well each seed's model happens to fit.",
        "",
    ]
    page = "\n".join(lines)
    (out / "RESULTS.md").write_text(page)
    return page


if __name__ == "__main__":
    raise SystemExit(main())

"""``compare`` and ``cam``: run methods × seeds, then write ``results.json`` and a report.

Layout of a comparison folder::

    OUT/
      runs/<method>-seed<k>/   one training run each (config.json, metrics.jsonl, checkpoint.pt, ...)
      results.json             every run's history and final metrics, per-method mean ± std
      report/
        report.md              the table of test error, the figures, the setting and hardware
        curves.png             test error and training loss per epoch, mean ± std over seeds
        mixed_grid.png         Original / MixUp / CutOut / CutMix on training images
        photos_grid.png        the same on scikit-image's photos (with ``photos=True``)
        cam.png                CAM overlays of the same test images under every method
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from batchmix.app.cam import cam_boxes, class_activation_maps, localisation, normalise_maps
from batchmix.app.checkpoint import CHECKPOINT_NAME, load_checkpoint
from batchmix.app.config import METHODS, TrainConfig
from batchmix.app.data import Data, load_data
from batchmix.app.errors import AppError
from batchmix.app.figures import mix_examples, save_cam_figure, save_curves, save_mixed_grid
from batchmix.app.models import CamClassifier
from batchmix.app.train import RUN_FILES, load_trained, rebuild_model, run_in_use, train

__all__ = ["check_writable", "compare", "parse_methods", "pick_examples", "run_cam"]

METHOD_TITLES = {
    "none": "Baseline",
    "mixup": "MixUp",
    "cutout": "CutOut",
    "cutmix": "CutMix",
    "resizemix": "ResizeMix",
    "fmix": "FMix",
    "saliencymix": "SaliencyMix",
    "gridmix": "GridMix",
    "mosaic": "Mosaic",
    "mix": "Mix",
}


def parse_methods(text: str) -> list[str]:
    """``"none,mixup,cutmix"`` into a list, each checked against the known methods."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise AppError(
            f"--methods: expected a comma-separated list from {', '.join(METHODS)}, got {text!r}."
        )
    for name in names:
        if name not in METHODS:
            raise AppError(
                f"unknown method {name!r} in --methods; expected any of: {', '.join(METHODS)}."
            )
    if len(set(names)) != len(names):
        raise AppError(f"--methods: each method may appear once, got {text!r}.")
    return names


def check_writable(folder: Path, what: str) -> None:
    """Checks, before any work, that files can be created in ``folder`` (made if missing).

    The probe is a nameless temporary file in ``folder`` or, when it does not exist yet, in the
    nearest folder above it that does; nothing is left behind.

    Raises:
        AppError: a file stands where a folder is needed, or the folder is not writable.
    """
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        kind = "a file" if existing.is_file() else "not a folder"
        raise AppError(
            f"cannot write {what} to {folder}: expected a folder, but {existing} is {kind}."
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise AppError(
            f"cannot write {what} to {folder}: expected a writable folder, but creating a file in "
            f"{existing} failed ({error.strerror or error})."
        ) from None


def pick_examples(labels: Tensor, count: int) -> list[int]:
    """Indices for figures: the first image of each class in turn, ``count`` in all."""
    classes = int(labels.max()) + 1 if len(labels) else 0
    per_class = [torch.nonzero(labels == k).flatten().tolist() for k in range(classes)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < min(count, len(labels)):
        for indices in per_class:
            if depth < len(indices) and len(chosen) < count:
                chosen.append(indices[depth])
        depth += 1
    return chosen


def _environment(device: str) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _cam_rows(
    model: CamClassifier, data: Data, indices: Sequence[int], threshold: float
) -> tuple[Tensor, Tensor, list[str]]:
    """Maps in [0, 1] for the true class, boxes from them, and captions with the prediction."""
    images = torch.stack([data.test[i][0] for i in indices])
    labels = torch.tensor([int(data.test.labels[i]) for i in indices])
    with torch.no_grad():
        maps, logits = class_activation_maps(model, images, labels)
    scaled = normalise_maps(maps, (int(images.shape[-2]), int(images.shape[-1])))
    probabilities = logits.softmax(dim=1)
    predicted = probabilities.argmax(dim=1)
    captions = [
        f"pred {data.classes[int(p)]} {float(probabilities[j, p]):.2f}"
        for j, p in enumerate(predicted)
    ]
    return scaled, cam_boxes(scaled, threshold), captions


def _display_images(data: Data, indices: Sequence[int]) -> Tensor:
    return torch.stack([data.test.raw(i).float() / 255 for i in indices])


def run_cam(
    checkpoint: str,
    out: Path,
    *,
    indices: Sequence[int] | None,
    count: int,
    threshold: float,
    loc_limit: int | None,
    data_dir: str | None,
    download: bool,
    overwrite: bool,
) -> dict[str, Any]:
    """The ``cam`` command: overlays for chosen test images, localisation when boxes exist."""
    if indices is not None and not indices:
        raise AppError("--images: expected at least one test index such as 0,5,9, got none.")
    figure_path, json_path = out / "cam.png", out / "cam.json"
    held = [p.name for p in (figure_path, json_path) if p.exists()]
    if held and not overwrite:
        raise AppError(f"{out} already holds {', '.join(held)}; pass --overwrite to replace them.")
    check_writable(out, "the CAM files")
    model, data, payload = load_trained(checkpoint, data_dir=data_dir, download=download)
    if indices is None:
        indices = pick_examples(data.test.labels, count)
    bad = [i for i in indices if not 0 <= i < len(data.test)]
    if bad:
        raise AppError(f"--images: expected test indices in [0, {len(data.test)}), got {bad}.")
    maps, boxes, captions = _cam_rows(model, data, indices, threshold)
    method = str(payload["config"].get("method", "model"))
    title = f"{METHOD_TITLES.get(method, method)} (epoch {payload['epoch']})"
    true_boxes = None if data.test_boxes is None else data.test_boxes[list(indices)]
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "images": list(indices),
        "threshold": threshold,
        "predicted_boxes": boxes.tolist(),
    }
    if data.test_boxes is not None:
        result["localisation"] = localisation(
            model,
            data.test,
            data.test_boxes,
            torch.device("cpu"),
            threshold=threshold,
            limit=loc_limit,
        )
    out.mkdir(parents=True, exist_ok=True)
    save_cam_figure(
        figure_path,
        _display_images(data, indices),
        {title: maps},
        titles=[data.classes[int(data.test.labels[i])] for i in indices],
        captions={title: captions},
        true_boxes=true_boxes,
        predicted_boxes={title: boxes} if true_boxes is not None else None,
    )
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    result["figure"] = str(figure_path)
    return result


# ----------------------------------------------------------------------------- compare


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _format(mean: float, std: float) -> str:
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


#: The files of ``OUT/report/`` that a comparison writes (``--overwrite`` removes stale ones).
REPORT_FILES = ("report.md", "curves.png", "mixed_grid.png", "photos_grid.png", "cam.png")
_RUN_FOLDER = re.compile(r"(?P<method>[a-z]+)-seed-?[0-9]+")


def _read_history(path: Path) -> list[dict[str, Any]]:
    """The epoch records in a run's ``metrics.jsonl`` (none if it is missing)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _earlier_runs(out: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """``(method, seed)`` → the run's entry in an earlier ``results.json`` in ``out``, if any."""
    try:
        earlier = json.loads((out / "results.json").read_text())
        return {(str(r["method"]), int(r["seed"])): r for r in earlier["runs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _wall_time(
    history: list[dict[str, Any]],
    before: list[dict[str, Any]],
    measured: float,
    earlier: dict[str, Any] | None,
) -> float:
    """A run's wall time, counting the epochs trained before this call (``--resume``).

    ``before`` is the run's metrics before ``train`` was called; the epochs it shares with the
    final ``history`` were trained earlier. A run that was already finished keeps the wall time
    an earlier ``results.json`` recorded for it (else the sum of its epochs' times), instead of
    the time it took to reload; a resumed run adds its earlier epochs' times to ``measured``.
    """
    kept = 0
    while kept < min(len(before), len(history)) and before[kept] == history[kept]:
        kept += 1
    if (
        kept == len(history)
        and earlier is not None
        and earlier.get("history") == history
        and isinstance(earlier.get("wall_s"), (int, float))
    ):
        return float(earlier["wall_s"])
    previous = sum(float(record.get("epoch_s", 0.0)) for record in history[:kept])
    return previous + (measured if kept < len(history) else 0.0)


def _remove_stale(out: Path, keep: set[str]) -> None:
    """``--overwrite``: removes the run folders and report figures of an earlier comparison.

    Only what a comparison writes is removed: ``runs/<method>-seed<k>`` folders that hold run
    files and are not in ``keep``, and the report's own files; never a symbolic link or anything
    outside ``out``.
    """
    root = out.resolve()
    runs = out / "runs"
    stale = []
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        match = _RUN_FOLDER.fullmatch(folder.name)
        if (
            folder.name in keep
            or match is None
            or match["method"] not in METHODS
            or folder.is_symlink()
            or not folder.is_dir()
            or not folder.resolve().is_relative_to(root)
            or not any((folder / name).exists() for name in RUN_FILES)
        ):
            continue
        refusal = run_in_use(folder)
        if refusal is not None:  # before anything is removed
            raise AppError(f"cannot replace the comparison in {out}: {refusal}")
        stale.append(folder)
    for folder in stale:
        shutil.rmtree(folder)
    report = out / "report"
    for name in REPORT_FILES:
        path = report / name
        if path.is_file() and path.resolve().is_relative_to(root):
            path.unlink()


def compare(
    base: TrainConfig,
    methods: Sequence[str],
    seeds: int,
    out: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    cam_count: int = 8,
    threshold: float = 0.2,
    loc_limit: int | None = 1000,
    photos: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Trains every method with seeds ``base.seed … base.seed + seeds − 1`` and reports.

    Raises:
        AppError: bad settings, missing data, ``out`` cannot be written, or ``out`` already holds
            a comparison (unless ``resume`` or ``overwrite``); nothing is written before these
            checks pass. With ``overwrite``, the run folders and report files of the earlier
            comparison that this one does not rewrite are removed once every run has trained.
    """
    if seeds < 1:
        raise AppError(f"--seeds: expected a positive number of seeds, got {seeds}.")
    if resume and overwrite:
        raise AppError(
            "--resume and --overwrite exclude each other: continue the comparison, or replace it."
        )
    held = [name for name in ("results.json", "runs", "report") if (out / name).exists()]
    if held and not (resume or overwrite):
        raise AppError(
            f"{out} already holds a comparison ({', '.join(held)}); pass --resume to continue it "
            "or --overwrite to replace it."
        )
    configs = {
        (method, seed): replace(
            base, method=method, seed=seed, out=str(out / "runs" / f"{method}-seed{seed}")
        )
        for seed in range(base.seed, base.seed + seeds)
        for method in methods
    }
    for folder in dict.fromkeys([out, out / "report", *(Path(c.out) for c in configs.values())]):
        check_writable(folder, "the comparison")
    data = load_data(base)
    earlier = _earlier_runs(out) if resume else {}
    started = time.perf_counter()
    carried = 0.0  # time spent on reused epochs in earlier calls (--resume)
    runs: list[dict[str, Any]] = []
    for number, ((method, seed), config) in enumerate(configs.items(), start=1):
        print(f"[{number}/{len(configs)}] {method}, seed {seed} -> {config.out}", flush=True)
        before = _read_history(Path(config.out) / "metrics.jsonl") if resume else []
        run_started = time.perf_counter()
        finished = train(config, resume=resume, overwrite=overwrite, data=data)
        measured = time.perf_counter() - run_started
        wall_s = _wall_time(finished["history"], before, measured, earlier.get((method, seed)))
        carried += wall_s - measured
        runs.append(
            {
                "method": method,
                "seed": seed,
                "out": config.out,
                "final": finished["final"],
                "history": finished["history"],
                "wall_s": wall_s,
                "device": finished["device"],
            }
        )
    if overwrite:
        _remove_stale(out, {Path(c.out).name for c in configs.values()})
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)

    # Figures: how each method mixes, how training went, where each model looks.
    examples = pick_examples(data.test.labels, cam_count)
    shown = pick_examples(data.train.labels, 4)
    grid_images = torch.stack([data.train.raw(i).float() / 255 for i in shown])
    grid_labels = data.train.labels[shown]
    save_mixed_grid(
        report / "mixed_grid.png",
        mix_examples(
            grid_images, grid_labels, data.num_classes, seed=base.seed, cutout_size=base.cutout_size
        ),
        data.classes,
    )
    if photos:
        from batchmix.app.show import run_show

        run_show(
            report / "photos_grid.png",
            folder=None,
            size=160,
            count=4,
            seed=base.seed,
            overwrite=True,
        )
    save_curves(
        report / "curves.png",
        {METHOD_TITLES[m]: [r["history"] for r in runs if r["method"] == m] for m in methods},
    )
    maps, boxes, captions = {}, {}, {}
    for run in runs:
        checkpoint = Path(run["out"]) / CHECKPOINT_NAME
        model = rebuild_model(load_checkpoint(checkpoint), checkpoint)
        if data.test_boxes is not None:  # localisation of every seed, CAM figure of the first
            run["localisation"] = localisation(
                model,
                data.test,
                data.test_boxes,
                torch.device("cpu"),
                threshold=threshold,
                limit=loc_limit,
            )
        if run["seed"] != base.seed:
            continue
        title = METHOD_TITLES[run["method"]]
        maps[title], boxes[title], captions[title] = _cam_rows(model, data, examples, threshold)
    save_cam_figure(
        report / "cam.png",
        _display_images(data, examples),
        maps,
        titles=[data.classes[int(data.test.labels[i])] for i in examples],
        captions=captions,
        true_boxes=None if data.test_boxes is None else data.test_boxes[examples],
        predicted_boxes=boxes if data.test_boxes is not None else None,
    )

    summary: dict[str, Any] = {}
    for method in methods:
        chosen = [r for r in runs if r["method"] == method]
        top1_error = [r["final"]["test_error"] for r in chosen]
        top5_error = [100.0 - r["final"]["test_top5"] for r in chosen]
        entry: dict[str, Any] = {"seeds": len(chosen)}
        for key, values in (("test_error", top1_error), ("test_top5_error", top5_error)):
            mean, std = _mean_std(values)
            entry[f"{key}_mean"], entry[f"{key}_std"] = mean, None if math.isnan(std) else std
        for key in ("top1_loc", "gt_known_loc", "mean_iou"):
            located = [r["localisation"][key] for r in chosen if "localisation" in r]
            if located:
                mean, std = _mean_std(located)
                entry[key], entry[f"{key}_std"] = mean, None if math.isnan(std) else std
        entry["wall_s_mean"] = sum(r["wall_s"] for r in chosen) / len(chosen)
        summary[method] = entry
    results = {
        "command": command,
        "out": str(out),
        "config": base.to_dict(),
        "methods": list(methods),
        "seeds": list(range(base.seed, base.seed + seeds)),
        "train_images": len(data.train),
        "test_images": len(data.test),
        "threshold": threshold,
        "summary": summary,
        "photos": photos,
        "runs": runs,
        "wall_s": time.perf_counter() - started + carried,
        "environment": _environment(runs[0]["device"]),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (report / "report.md").write_text(_report_markdown(results, data))
    return results


def _std(value: float | None) -> float:
    return math.nan if value is None else value


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def _augmentation(data: Data) -> str:
    train = data.train
    parts = [f"random crop from {train.pad}-px zero padding"] if train.pad else []
    parts += ["horizontal flip"] if train.flip else []
    return " and ".join(parts) if train.augment and parts else "none"


def _report_markdown(results: dict[str, Any], data: Data) -> str:
    config = results["config"]
    summary = results["summary"]
    seeds = results["seeds"]
    best = min(summary, key=lambda m: summary[m]["test_error_mean"])
    has_loc = any("gt_known_loc" in entry for entry in summary.values())
    lines = [
        f"# Mixing methods compared on {config['data']} with {config['model']}",
        "",
        f"Test top-1 error after {config['epochs']} epochs (%, lower is better), mean ± sample "
        f"standard deviation over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
        f"{results['train_images']} training and {results['test_images']} test images.",
        "",
        "| Method | Top-1 error | Top-5 error |"
        + (" Top-1 loc. (%) | GT-known loc. (%) |" if has_loc else "")
        + " Time per run |",
        "|---|---|---|" + ("---|---|" if has_loc else "") + "---|",
    ]
    for method, entry in summary.items():
        name = METHOD_TITLES[method]
        top1 = _format(entry["test_error_mean"], _std(entry["test_error_std"]))
        top5 = _format(entry["test_top5_error_mean"], _std(entry["test_top5_error_std"]))
        if method == best:
            name, top1 = f"**{name}**", f"**{top1}**"
        loc = "".join(
            f" {_format(entry[key], _std(entry.get(f'{key}_std')))} |"
            if key in entry
            else (" – |" if has_loc else "")
            for key in ("top1_loc", "gt_known_loc")
        )
        lines.append(f"| {name} | {top1} | {top5} |{loc} {_seconds(entry['wall_s_mean'])} |")
    env = results["environment"]
    lines += [
        "",
        "Short schedules and small models often favour the baseline: mixing regularises, and "
        "pays off when a model would otherwise overfit (fewer images, more epochs).",
        "",
        "## Training curves",
        "",
        "![Test error and training loss per epoch](curves.png)",
        "",
        "The training loss is measured on mixed batches, so it is higher for the mixing methods "
        "by construction; the test error is what compares them.",
        "",
        "## What each method feeds the model",
        "",
        "![Original, MixUp, CutOut and CutMix on training images](mixed_grid.png)",
        "",
        "Each title lists the label weights of the mixed image.",
        "",
        *(
            ["![The same on scikit-image's photos](photos_grid.png)", ""]
            if results.get("photos")
            else []
        ),
        "## Where the models look: class activation maps",
        "",
        "![CAM of the true class for each method's model](cam.png)",
        "",
        "The first row shows test images with their class; each further row overlays the CAM "
        "(Zhou et al. 2016) of the true class from one method's model (seed "
        f"{seeds[0]}), red = strong evidence, with the model's prediction above it.",
    ]
    if has_loc:
        share = f"{100 * results.get('threshold', 0.2):g}%"
        lines += [
            "Green: the true box; red: the box around the largest connected region of the map "
            f"(scaled to [0, 1]) at or above {share} of its peak. GT-known localisation accuracy "
            "is the share of test images whose red box has IoU >= 0.5 with the green one; top-1 "
            "localisation accuracy also needs the top-1 prediction to be right, and is the "
            "measure the CutMix paper reports.",
        ]
    lines += [
        "",
        "## Setting",
        "",
        f"- Command: `{results['command'] or 'batchmix compare'}`",
        f"- Data: {config['data']}, {data.image_size}×{data.image_size} px, {data.channels} channel(s), "
        f"{data.num_classes} classes; augmentation: {_augmentation(data)}.",
        f"- Model: {config['model']} (width {config['width']}); {config['optimizer']} lr {config['lr']}, "
        f"momentum {config['momentum']}, weight decay {config['weight_decay']}, {config['schedule']} "
        f"schedule, batch {config['batch_size']}, {config['epochs']} epochs.",
        f"- Mixing: α = {config['alpha']}, p = {config['mix_prob']}, mode {config['mix_mode']}, "
        f"label smoothing {config['label_smoothing']}, mix off after epoch {config['mix_off_epoch'] or '–'}.",
        f"- Hardware: {env['platform']}, {env['cpu_count']} CPU(s), {env['torch_threads']} torch thread(s), "
        f"GPU: {env['cuda'] or 'none'}; Python {env['python']}, torch {env['torch']}.",
        f"- Wall time of the whole comparison: {results['wall_s'] / 60:.1f} min.",
        "",
        "Every run's per-epoch metrics are in `../runs/<method>-seed<k>/metrics.jsonl`, and all "
        "numbers above in `../results.json`.",
        "",
    ]
    return "\n".join(lines)


def command_line(argv: Sequence[str] | None) -> str:
    """The command as typed, for the record."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["batchmix", *arguments])

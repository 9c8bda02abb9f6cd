"""Figures for the report: mixed-image grids, training curves and CAM overlays.

Drawn with matplotlib's object-oriented API on the Agg canvas, so nothing depends on (or
changes) the global pyplot backend, and a machine without a display works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import batchmix

__all__ = ["MIX_COLUMNS", "mix_examples", "save_cam_figure", "save_curves", "save_mixed_grid"]

MIX_COLUMNS = ("Original", "MixUp", "CutOut", "CutMix")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _show(axis: Any, image: Tensor) -> None:
    """Draws a ``(C, H, W)`` image with values in [0, 1]."""
    array = image.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        axis.imshow(array[:, :, 0], cmap="gray", vmin=0, vmax=1)
    else:
        axis.imshow(array)
    axis.set_xticks([])
    axis.set_yticks([])


def mix_examples(
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    seed: int = 0,
    cutout_size: int | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Original, MixUp, CutOut and CutMix versions of one batch, with their label rows.

    Args:
        images: ``(B, C, H, W)`` float images in [0, 1].
        labels: ``(B,)`` class indices.
        num_classes: classes of the label rows.
        seed: seed of the draws, so the figure can be reproduced.
        cutout_size: CutOut's square side; half the image side by default.
    """
    generator = torch.Generator().manual_seed(seed)
    side = int(images.shape[-1])
    transforms: dict[str, Any] = {
        "MixUp": batchmix.MixUp(num_classes=num_classes, mode="sample", generator=generator),
        "CutOut": batchmix.CutOut(
            size=cutout_size or max(1, side // 2), num_classes=num_classes, generator=generator
        ),
        "CutMix": batchmix.CutMix(num_classes=num_classes, mode="sample", generator=generator),
    }
    rows = torch.nn.functional.one_hot(labels, num_classes).float()
    out: dict[str, tuple[Tensor, Tensor]] = {"Original": (images, rows)}
    for name, transform in transforms.items():
        out[name] = transform(images, labels)
    return out


def save_mixed_grid(
    path: Path, examples: Mapping[str, tuple[Tensor, Tensor]], class_names: Sequence[str]
) -> Path:
    """One column per method, one row per image, each titled with its label weights."""
    columns = list(examples)
    count = int(next(iter(examples.values()))[0].shape[0])
    figure = _figure(2.6 * len(columns), 2.8 * count)
    axes = figure.subplots(count, len(columns), squeeze=False)
    for column, name in enumerate(columns):
        images, rows = examples[name]
        for row in range(count):
            axis = axes[row, column]
            _show(axis, images[row])
            weights = ", ".join(
                f"{class_names[k]} {float(w):.2f}"
                for k, w in enumerate(rows[row])
                if float(w) > 0.005
            )
            axis.set_title(f"{name}\n{weights}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return path


def save_curves(path: Path, histories: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]]) -> Path:
    """Test error and training loss per epoch: mean over seeds, shaded ± one standard deviation.

    Args:
        path: PNG to write.
        histories: per method, one list of per-epoch metric records per seed.
    """
    figure = _figure(11, 4)
    axes = figure.subplots(1, 2)
    for method, runs in histories.items():
        for axis, key in zip(axes, ("test_error", "train_loss"), strict=True):
            length = min((len(run) for run in runs), default=0)
            if length == 0:
                continue
            values = np.array(
                [[record[key] for record in run[:length]] for run in runs], dtype=float
            )
            epochs = np.arange(1, length + 1)
            mean = values.mean(axis=0)
            axis.plot(epochs, mean, marker="o", markersize=3, label=method)
            if len(runs) > 1:
                spread = values.std(axis=0, ddof=1)
                axis.fill_between(epochs, mean - spread, mean + spread, alpha=0.2)
    axes[0].set_ylabel("test top-1 error (%)")
    axes[1].set_ylabel("training loss (on mixed batches)")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return path


def _box(axis: Any, box: Tensor, colour: str) -> None:
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in box)
    axis.add_patch(
        Rectangle(
            (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5
        )
    )


def save_cam_figure(
    path: Path,
    images: Tensor,
    maps: Mapping[str, Tensor],
    *,
    titles: Sequence[str],
    captions: Mapping[str, Sequence[str]] | None = None,
    true_boxes: Tensor | None = None,
    predicted_boxes: Mapping[str, Tensor] | None = None,
) -> Path:
    """The images in the first row, then one row of CAM overlays per model.

    Args:
        path: PNG to write.
        images: ``(N, C, H, W)`` in [0, 1].
        maps: per model (row label), ``(N, H, W)`` maps in [0, 1].
        titles: one title per image (its class).
        captions: per model, one caption per image (e.g. the prediction).
        true_boxes: ``(N, 4)`` true boxes, drawn in green.
        predicted_boxes: per model, ``(N, 4)`` boxes from the thresholded map, drawn in red.
    """
    count = int(images.shape[0])
    figure = _figure(1.9 * count, 2.0 * (len(maps) + 1))
    axes = figure.subplots(len(maps) + 1, count, squeeze=False)
    for column in range(count):
        _show(axes[0, column], images[column])
        axes[0, column].set_title(titles[column], fontsize=8)
        if true_boxes is not None:
            _box(axes[0, column], true_boxes[column], "lime")
    axes[0, 0].set_ylabel("image", fontsize=9)
    for row, (name, overlay) in enumerate(maps.items(), start=1):
        for column in range(count):
            axis = axes[row, column]
            _show(axis, images[column])
            axis.imshow(
                overlay[column].detach().cpu().numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1
            )
            if true_boxes is not None:
                _box(axis, true_boxes[column], "lime")
            if predicted_boxes is not None and name in predicted_boxes:
                _box(axis, predicted_boxes[name][column], "red")
            if captions is not None and name in captions:
                axis.set_title(captions[name][column], fontsize=7)
        axes[row, 0].set_ylabel(name, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return path

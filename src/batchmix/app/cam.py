"""Class activation maps and weakly-supervised localisation.

CAM (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016): for a
network that ends in global average pooling and a linear layer, the map of class ``c`` is
``Σ_k w_ck · f_k(x, y)`` over the last convolutional feature maps ``f_k``; its spatial mean plus
the bias is exactly the logit of ``c``.

Localisation, as in the CutMix paper (Yun et al. 2019): the map, upsampled to the image and
scaled to [0, 1], is thresholded at a fraction of its maximum (0.2 in Zhou et al.); the box
around the largest connected region above it is the predicted box. An image counts as localised
when that box has IoU >= 0.5 with the true one. "GT-known" localisation uses the map of the true
class; "top-1" localisation also requires the top-1 prediction to be right.

Boxes are ``(x1, y1, x2, y2)`` in pixels with exclusive ends, so a box's area is
``(x2 − x1)·(y2 − y1)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from batchmix.app.data import ImageDataset
from batchmix.app.errors import AppError
from batchmix.app.models import CamClassifier

__all__ = [
    "box_iou",
    "cam_boxes",
    "class_activation_maps",
    "localisation",
    "normalise_maps",
]


@torch.no_grad()
def class_activation_maps(
    model: CamClassifier, images: Tensor, classes: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Raw class activation maps at the feature maps' resolution.

    Args:
        model: a classifier with ``features`` and ``fc`` (see :mod:`batchmix.app.models`).
        images: ``(B, C, H, W)`` normalised images.
        classes: ``(B,)`` the class to map for each image; the predicted class when ``None``.

    Returns:
        ``(maps, logits)``: maps ``(B, h, w)`` and the model's logits ``(B, K)``.
    """
    features = model.features(images)  # (B, C, h, w)
    logits = model.fc(features.mean(dim=(2, 3)))
    if classes is None:
        classes = logits.argmax(dim=1)
    weights = model.fc.weight[classes.to(logits.device)]  # (B, C)
    maps = torch.einsum("bchw,bc->bhw", features, weights)
    return maps, logits


def normalise_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsamples ``(B, h, w)`` maps bilinearly to ``size`` and scales each to [0, 1]."""
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    low = up.amin(dim=(1, 2), keepdim=True)
    high = up.amax(dim=(1, 2), keepdim=True)
    return (up - low) / (high - low).clamp_min(1e-12)


def cam_boxes(maps: Tensor, threshold: float = 0.2) -> Tensor:
    """Boxes around the largest connected region of each map at or above ``threshold·max``.

    Args:
        maps: ``(B, H, W)`` maps, each scaled to [0, 1] (see :func:`normalise_maps`).
        threshold: fraction of each map's maximum, in (0, 1].

    Returns:
        ``(B, 4)`` int64 boxes ``(x1, y1, x2, y2)``, exclusive ends. A flat map gives the whole
        image.
    """
    from skimage.measure import label

    if not 0 < threshold <= 1:
        raise AppError(f"--threshold: expected a fraction in (0, 1], got {threshold}.")
    if maps.ndim != 3:
        raise AppError(f"cam_boxes: expected maps of shape (B, H, W), got {tuple(maps.shape)}.")
    boxes = []
    for single in maps.detach().cpu().numpy():
        peak = single.max()
        mask = single >= threshold * peak if peak > 0 else np.ones_like(single, dtype=bool)
        regions = np.asarray(label(mask, connectivity=2))  # type: ignore[no-untyped-call]
        sizes = np.bincount(regions.ravel())
        sizes[0] = 0
        ys, xs = np.nonzero(regions == int(sizes.argmax()))
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(np.asarray(boxes, dtype=np.int64).reshape(-1, 4))


def box_iou(first: Tensor, second: Tensor) -> Tensor:
    """Intersection over union of paired boxes ``(B, 4)`` (exclusive ends), ``(B,)`` float64."""
    if first.shape != second.shape or first.ndim != 2 or first.shape[1] != 4:
        raise AppError(
            f"box_iou: expected two (B, 4) box tensors, got {tuple(first.shape)} and {tuple(second.shape)}."
        )
    a, b = first.double(), second.double()
    width = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp_min(0)
    height = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp_min(0)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]).clamp_min(0) * (a[:, 3] - a[:, 1]).clamp_min(0)
    area_b = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(union))


@torch.no_grad()
def localisation(
    model: CamClassifier,
    dataset: ImageDataset,
    true_boxes: Tensor,
    device: torch.device,
    *,
    threshold: float = 0.2,
    iou: float = 0.5,
    limit: int | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Weakly-supervised localisation accuracy (%) of ``model`` on ``dataset``.

    Returns:
        ``gt_known_loc`` (box from the true class's map has IoU >= ``iou``), ``top1_loc``
        (that, and the top-1 prediction is right), ``mean_iou`` and ``images``.
    """
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if true_boxes.shape[0] < count:
        raise AppError(f"expected a true box per image ({count}), got {true_boxes.shape[0]}.")
    model.eval()
    loader = DataLoader(torch.utils.data.Subset(dataset, range(count)), batch_size=batch_size)
    ious, correct = [], []
    start = 0
    for images, labels in loader:
        images = images.to(device)
        maps, logits = class_activation_maps(model, images, labels)
        boxes = cam_boxes(normalise_maps(maps, tuple(images.shape[-2:])), threshold)
        ious.append(box_iou(boxes, true_boxes[start : start + len(labels)]))
        correct.append(logits.argmax(dim=1).cpu() == labels)
        start += len(labels)
    overlap = torch.cat(ious)
    right = torch.cat(correct)
    hit = overlap >= iou
    return {
        "gt_known_loc": 100.0 * float(hit.double().mean()),
        "top1_loc": 100.0 * float((hit & right).double().mean()),
        "mean_iou": float(overlap.mean()),
        "images": float(count),
    }

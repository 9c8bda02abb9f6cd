"""Finding images and labels inside the structures users pass, and putting them back.

A transform is called as ``t(images, labels)``, ``t((images, labels))``, ``t([images, labels])`` or
``t(sample)`` with ``sample`` any nesting of tuples, lists and dicts. The labels are found by a
``labels_getter`` (torchvision's rule by default: the second item of a tuple or list, or a dict
entry whose key is ``"labels"`` or contains ``"label"``, case-insensitive). Every other tensor leaf
that is a plain tensor or a ``tv_tensors.Image``/``Video`` is an image batch; everything else passes
through untouched. The output has the same structure, with the same object wherever nothing
changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors

from batchmix.boxes import target_member_ids

__all__ = [
    "LabelsGetter",
    "ParsedSample",
    "default_labels_getter",
    "parse_labels_getter",
    "parse_sample",
]

LabelsGetter = Callable[[Any], Any]


def default_labels_getter(sample: Any) -> Any:
    """torchvision's heuristic: second item of a tuple/list, else a label-like dict key.

    Returns ``None`` when nothing label-like is found; the caller decides whether that is an error.
    """
    if isinstance(sample, tuple | list):
        if len(sample) < 2:
            return None
        sample = sample[1]
        if not isinstance(sample, Mapping):
            return sample  # the second item is the labels, whatever its type
    if isinstance(sample, Tensor) and not isinstance(sample, tv_tensors.TVTensor):
        return sample
    if not isinstance(sample, Mapping):
        return None
    keys = [key for key in sample if isinstance(key, str)]
    for key in keys:
        if key.lower() == "labels":
            return sample[key]
    for key in keys:
        if "label" in key.lower():
            return sample[key]
    return None


def parse_labels_getter(
    owner: str, labels_getter: str | LabelsGetter | None
) -> LabelsGetter | None:
    """Validates the ``labels_getter`` argument: ``"default"``, a callable, or ``None`` (no labels)."""
    if isinstance(labels_getter, str):
        if labels_getter == "default":
            return default_labels_getter
    elif labels_getter is None or callable(labels_getter):
        return labels_getter
    raise ValueError(
        f"{owner}: expected labels_getter to be 'default', a callable or None, got {labels_getter!r}."
    )


_UNSUPPORTED = (tv_tensors.KeyPoints,)
# The tree spec of a pair of leaves, for tuples and lists.
_PAIR_SPECS = {kind: tree_flatten(kind((0, 0)))[1] for kind in (tuple, list)}


def _image_positions(
    leaves: list[Any], label_position: int | None, in_targets: set[int]
) -> list[int]:
    """Where the image batches sit, by torchvision's rule: every ``tv_tensors.Image`` and
    ``Video``; when there are none, the first plain tensor (other than the labels and the
    detection targets' entries). Every other leaf passes through."""
    candidates = [
        k for k, leaf in enumerate(leaves) if k != label_position and id(leaf) not in in_targets
    ]
    explicit = [k for k in candidates if isinstance(leaves[k], tv_tensors.Image | tv_tensors.Video)]
    if explicit:
        return explicit
    plain = (
        k
        for k in candidates
        if isinstance(leaves[k], Tensor) and not isinstance(leaves[k], tv_tensors.TVTensor)
    )
    first = next(plain, None)
    return [] if first is None else [first]


def _looks_like_images(leaf: Any) -> bool:
    """An image batch by type, or a plain tensor of 4 or more dimensions."""
    if isinstance(leaf, tv_tensors.Image | tv_tensors.Video):
        return True
    return type(leaf) is Tensor and leaf.ndim >= 4


@dataclass
class ParsedSample:
    """A flattened sample: its leaves, where images, masks and labels sit, how to rebuild it."""

    sample: Any
    leaves: list[Any]
    spec: Any
    image_positions: list[int]
    mask_positions: list[int]
    label_position: int | None
    has_boxes: bool

    @property
    def labels(self) -> Tensor | None:
        return None if self.label_position is None else self.leaves[self.label_position]

    @property
    def images(self) -> list[Tensor]:
        return [self.leaves[k] for k in self.image_positions]

    @property
    def masks(self) -> list[Tensor]:
        return [self.leaves[k] for k in self.mask_positions]

    def rebuild(self, images: list[Tensor], masks: list[Tensor], labels: Tensor | None) -> Any:
        """The original structure with new images, masks and labels in place of the old ones."""
        kind = type(self.sample)
        if kind in _PAIR_SPECS and self.spec is _PAIR_SPECS[kind] and len(images) == 1:
            # parse_sample's shortcut for (images, labels) pairs of plain tensors: no tree walk.
            pair = (images[0], self.leaves[1] if labels is None else labels)
            return pair if kind is tuple else list(pair)
        leaves = list(self.leaves)
        for positions, values in ((self.image_positions, images), (self.mask_positions, masks)):
            for position, value in zip(positions, values, strict=True):
                original = leaves[position]
                if isinstance(original, tv_tensors.TVTensor) and not isinstance(
                    value, tv_tensors.TVTensor
                ):
                    value = tv_tensors.wrap(value, like=original)
                leaves[position] = value
        if self.label_position is not None and labels is not None:
            leaves[self.label_position] = labels
        return tree_unflatten(leaves, self.spec)


def parse_sample(
    owner: str,
    inputs: tuple[Any, ...],
    labels_getter: LabelsGetter | None,
    *,
    labels_required: bool,
) -> ParsedSample:
    """Flattens ``inputs`` and locates labels, images and masks, before anything is modified.

    Samples with segmentation masks need no image-level labels.

    Args:
        owner: name of the calling transform, for error messages.
        inputs: the positional arguments the transform was called with.
        labels_getter: finds the labels in the sample; ``None`` means the sample has none.
        labels_required: whether a missing labels tensor is an error.
    """
    if not inputs:
        raise TypeError(f"{owner}: expected a batch, e.g. t(images, labels), got no arguments.")
    sample = inputs if len(inputs) > 1 else inputs[0]
    if (
        labels_getter is default_labels_getter
        and type(sample) in _PAIR_SPECS
        and len(sample) == 2
        and type(sample[0]) is Tensor
        and type(sample[1]) is Tensor
        and sample[0] is not sample[1]
    ):
        # (images, labels) of plain tensors, the common call: what the general path finds.
        return ParsedSample(sample, list(sample), _PAIR_SPECS[type(sample)], [0], [], 1, False)
    leaves, spec = tree_flatten(sample)
    _reject_unsupported(owner, leaves)
    has_boxes = any(isinstance(leaf, tv_tensors.BoundingBoxes) for leaf in leaves)
    in_targets = target_member_ids(sample) if has_boxes else set()
    mask_positions = [  # segmentation masks; instance masks inside detection targets are not
        k
        for k, leaf in enumerate(leaves)
        if isinstance(leaf, tv_tensors.Mask) and id(leaf) not in in_targets
    ]
    dense = bool(mask_positions) or has_boxes
    labels_required = labels_required and not dense

    label_position = None
    bare_tensor = isinstance(sample, Tensor)
    if labels_getter is not None and not (bare_tensor and not labels_required):
        labels = None if bare_tensor else labels_getter(sample)
        pair = type(sample) in (tuple, list) and len(sample) == 2
        if dense and (
            not isinstance(labels, Tensor)
            or id(labels) in in_targets
            or isinstance(labels, tv_tensors.BoundingBoxes)  # a detection target, not labels
            or (pair and isinstance(labels, tv_tensors.Mask))  # (images, masks): kornia's form
        ):
            labels = None  # segmentation or detection targets, no image-level labels
        if labels is None:
            if labels_required:
                raise ValueError(
                    f"{owner}: could not find the labels in the sample: expected (images, labels), "
                    "a dict with a 'labels'-like key, or a labels_getter, "
                    f"got {_describe(sample)}."
                )
        elif isinstance(labels, tv_tensors.Mask):
            raise TypeError(
                f"{owner}: expected the labels to be class indices or rows, got a "
                "tv_tensors.Mask where the labels were looked for; pass the labels under a "
                "'labels' key or with a labels_getter, or labels_getter=None for masks alone."
            )
        elif not isinstance(labels, Tensor):
            raise TypeError(
                f"{owner}: expected the labels to be a torch.Tensor, got {type(labels).__name__}."
            )
        else:
            label_position = next((k for k, leaf in enumerate(leaves) if leaf is labels), None)
            if label_position is None:
                raise ValueError(
                    f"{owner}: labels_getter returned a tensor that is not part of the sample."
                )

    elif labels_required:
        raise ValueError(
            f"{owner}: expected labels to mix, got labels_getter=None (a sample without "
            "labels), which only transforms that keep the labels (CutOut, Jigsaw) or samples "
            "with segmentation masks or detection boxes allow; pass labels_getter='default' or "
            "a callable that returns the labels."
        )

    image_positions = _image_positions(leaves, label_position, in_targets)
    if (
        not image_positions
        and in_targets
        and any(id(leaf) in in_targets and _looks_like_images(leaf) for leaf in leaves)
    ):
        raise ValueError(
            f"{owner}: expected the image batch beside the detection targets, got it inside a "
            "dict that holds a BoundingBoxes, which is read as one sample's detection target; "
            "pass (images, targets) with one target per sample: a list of B BoundingBoxes or "
            "of B dicts with a 'boxes' entry."
        )
    if not image_positions:
        raise ValueError(
            f"{owner}: expected at least one image tensor in the sample, got {_describe(sample)}."
        )
    return ParsedSample(
        sample, leaves, spec, image_positions, mask_positions, label_position, has_boxes
    )


def _reject_unsupported(owner: str, leaves: list[Any]) -> None:
    for leaf in leaves:
        if isinstance(leaf, _UNSUPPORTED):
            raise ValueError(
                f"{owner}: expected image batches and labels, got a {type(leaf).__name__}; "
                "keypoints are not mixed by batchmix."
            )
        if type(leaf).__module__.startswith("PIL."):
            raise TypeError(
                f"{owner}: expected batched tensors of shape (B, C, H, W), got a PIL image; "
                "convert with torchvision.transforms.v2.functional.pil_to_tensor and batch first."
            )


def _describe(sample: Any) -> str:
    if isinstance(sample, Tensor):
        return f"a tensor of shape {tuple(sample.shape)}"
    if isinstance(sample, Mapping):
        return f"a dict with keys {list(sample)}"
    if isinstance(sample, tuple | list):
        inner = ", ".join(type(item).__name__ for item in sample)
        return f"a {type(sample).__name__} of ({inner})"
    return f"a {type(sample).__name__}"


def check_images(
    owner: str, images: list[Tensor], batch_size: int | None, *, blends: bool = True
) -> tuple[int, int]:
    """Checks shapes, batch sizes and dtypes of all image batches; returns their common (H, W).

    A transform that ``blends`` pixels takes floating or uint8 images; one that only moves
    pixels (CutMix, CutOut, ...) takes any real dtype, integer and bool included.
    """
    size: tuple[int, int] | None = None
    for image in images:
        expected_ndim = 5 if isinstance(image, tv_tensors.Video) else 4
        if image.ndim != expected_ndim:
            layout = "(B, T, C, H, W)" if expected_ndim == 5 else "(B, C, H, W)"
            raise ValueError(
                f"{owner}: expected images of shape {layout}, got {tuple(image.shape)}."
            )
        if batch_size is not None and image.shape[0] != batch_size:
            raise ValueError(
                f"{owner}: expected images and labels with the same batch size, "
                f"got {image.shape[0]} images and {batch_size} labels."
            )
        if image.is_complex():
            raise TypeError(f"{owner}: expected real-valued images, got {image.dtype}.")
        if blends and not (image.is_floating_point() or image.dtype == torch.uint8):
            raise TypeError(
                f"{owner}: expected floating or uint8 images (it blends pixels), got {image.dtype}."
            )
        hw = (int(image.shape[-2]), int(image.shape[-1]))
        if size is not None and hw != size:
            raise ValueError(
                f"{owner}: expected all image batches to share one size, got {size} and {hw}."
            )
        size = hw
        if images[0].shape[0] != image.shape[0]:
            raise ValueError(
                f"{owner}: expected all image batches to share one batch size, "
                f"got {images[0].shape[0]} and {image.shape[0]}."
            )
    if size is None:
        raise ValueError(f"{owner}: expected at least one image tensor in the sample, got none.")
    return size


def check_masks(owner: str, masks: list[Tensor], batch_size: int, size: tuple[int, int]) -> None:
    """Checks that segmentation masks are ``(B, H, W)`` or ``(B, 1, H, W)`` like the images."""
    for mask in masks:
        shape = tuple(mask.shape)
        if mask.ndim not in (3, 4) or (mask.ndim == 4 and shape[1] != 1):
            raise ValueError(
                f"{owner}: expected masks of shape (B, H, W) or (B, 1, H, W), got {shape}."
            )
        if shape[0] != batch_size or (int(shape[-2]), int(shape[-1])) != size:
            raise ValueError(
                f"{owner}: expected masks matching the images' batch and size "
                f"({batch_size}, {size[0]}, {size[1]}), got {shape}."
            )

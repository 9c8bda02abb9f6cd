"""Detection targets: bounding boxes that follow the pixels they frame.

A batch for detection holds one target per sample, in batch order, as torchvision's detection
models expect: a list of dicts such as ``{"boxes": tv_tensors.BoundingBoxes (N, 4), "labels":
(N,), ...}``, or a plain list of ``BoundingBoxes``. Inside a dict, a tensor whose first
dimension equals the number of boxes in every target of the batch is per-box (labels, areas,
``iscrowd`` ...) and is kept, dropped or concatenated together with its box; entries named
like ``image_id`` (``_PER_IMAGE_KEYS``) and all others stay with their own sample, and
``labels``, ``area`` and the like (``_PER_BOX_KEYS``) must be per-box in every target. Each output
dict also gets ``"weights"``: a float32 per-box weight (MixUp: λ for the sample's own boxes,
1−λ for the partner's, boxes of weight 0 dropped; 1 for the cut-and-paste mixers, where an
object is either visible or not).

Rules, with visibility = share of a box's area that stays visible:

* CutMix, SaliencyMix: the partner's boxes are cut to the pasted box; the sample's boxes lose
  the pasted part (a box is shrunk where the paste covers it across its whole width or height,
  else it keeps its extent). Boxes under ``min_visibility`` are dropped.
* ResizeMix: the partner's boxes are scaled and moved with the pasted image; the sample's
  boxes lose the pasted part as for CutMix.
* Mosaic: each tile's boxes are cut to the tile; tiles of one source that form a rectangle
  (batches of one or two) count as one tile.
* MixUp: the union of both samples' boxes, with their weights.

A box with nothing visible is dropped whatever ``min_visibility`` (0 included); a box without
area (a point or a line) counts as covered, or as pasted, when it lies within the region. A
sample paired with itself keeps its boxes under CutMix and SaliencyMix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "BoxTarget",
    "blend",
    "clip_to",
    "find_targets",
    "paste",
    "remove_region",
    "replace_targets",
    "target_member_ids",
    "tile",
]

Region = tuple[float, float, float, float]


@dataclass
class BoxTarget:
    """One sample's boxes in XYXY pixels, with the per-box tensors that travel with them."""

    boxes: Tensor
    per_box: dict[str, Tensor]
    weights: Tensor
    container: tuple[Mapping[str, Any], str] | None  # the target dict and its boxes' key
    original: tv_tensors.BoundingBoxes
    parsed: Tensor  # the original boxes in XYXY float64, to recognise an untouched target

    def subset(self, keep: Tensor, boxes: Tensor, weights: Tensor | None = None) -> BoxTarget:
        """The boxes where ``keep`` is true, moved to ``boxes`` (all N rows), with new weights."""
        return BoxTarget(
            boxes[keep],
            {key: value[keep.to(value.device)] for key, value in self.per_box.items()},
            (self.weights if weights is None else weights)[keep],
            self.container,
            self.original,
            self.parsed,
        )

    def concat(self, other: BoxTarget) -> BoxTarget:
        """This sample's boxes followed by ``other``'s (same per-box keys required)."""
        if set(self.per_box) != set(other.per_box):
            raise ValueError(
                "expected every detection target to hold the same per-box entries, got "
                f"{sorted(self.per_box)} and {sorted(other.per_box)}."
            )
        per_box = {
            key: torch.cat([value, other.per_box[key].to(value.device)])
            for key, value in self.per_box.items()
        }
        return BoxTarget(
            torch.cat([self.boxes, other.boxes]),
            per_box,
            torch.cat([self.weights, other.weights]),
            self.container,
            self.original,
            self.parsed,
        )

    def build(self) -> Any:
        """The target in the caller's form, boxes converted back to their original format.

        Boxes that come out as they went in are returned as they were (no round trip through
        XYXY). Integer boxes are rounded; one that had an area and loses it to the rounding (a
        small box shrunk by ResizeMix, say) is dropped with its per-box entries.
        """
        target = self
        if torch.equal(self.boxes, self.parsed):
            boxes = self.original
        else:
            data = target._converted()
            if not self.original.is_floating_point():
                data = data.round().to(self.original.dtype)
                back = TF.convert_bounding_box_format(
                    data.to(torch.float64),
                    old_format=self.original.format,
                    new_format=tv_tensors.BoundingBoxFormat.XYXY,
                )
                collapsed = (_area(back) <= 0) & (_area(self.boxes) > 0)
                if bool(collapsed.any()):
                    target = self.subset(~collapsed, self.boxes)
                    data = data[~collapsed]
            boxes = tv_tensors.wrap(data.to(self.original.device), like=self.original)
        if target.container is None:
            return boxes
        container, key = target.container
        out = dict(container)
        out[key] = boxes
        out.update(target.per_box)
        out["weights"] = target.weights.to(torch.float32)
        return out

    def _converted(self) -> Tensor:
        """The boxes in the original format, in the original floating dtype (float64 for
        integer boxes, rounded afterwards)."""
        converted: Tensor = TF.convert_bounding_box_format(
            self.boxes.to(
                self.original.dtype if self.original.is_floating_point() else torch.float64
            ),
            old_format=tv_tensors.BoundingBoxFormat.XYXY,
            new_format=self.original.format,
        )
        return converted


def _walk(sample: Any, visit: Callable[[Any], Any | None]) -> Any:
    """Rebuilds ``sample``, replacing any node for which ``visit`` returns something."""
    replaced = visit(sample)
    if replaced is not None:
        return replaced
    if isinstance(sample, Mapping):
        return type(sample)({key: _walk(value, visit) for key, value in sample.items()})  # type: ignore[call-arg]
    if isinstance(sample, tuple | list):
        return type(sample)(_walk(value, visit) for value in sample)
    return sample


def _is_target(node: Any) -> bool:
    if isinstance(node, tv_tensors.BoundingBoxes):
        return True
    return isinstance(node, Mapping) and any(
        isinstance(v, tv_tensors.BoundingBoxes) for v in node.values()
    )


def find_targets(
    owner: str, sample: Any, batch_size: int, size: tuple[int, int], *, settle: bool = True
) -> list[BoxTarget]:
    """All detection targets of the sample in batch order (empty when it holds no boxes);
    ``settle=False`` leaves out the per-box checks, for a transform that leaves boxes alone."""
    found: list[Any] = []

    def visit(node: Any) -> Any | None:
        if _is_target(node):
            found.append(node)
            return node
        if isinstance(node, Mapping):
            _refuse_split_targets(owner, dict(node))
        elif isinstance(node, list | tuple):
            _refuse_split_targets(owner, {f"item {k}": v for k, v in enumerate(node)})
        return None

    _walk(sample, visit)
    if not found:
        return []
    if len(found) != batch_size:
        raise ValueError(
            f"{owner}: expected one detection target per sample (a list of {batch_size} "
            "BoundingBoxes, or of dicts with a 'boxes' entry), "
            f"got {len(found)} for a batch of {batch_size}."
        )
    targets = [_parse_target(owner, node, size) for node in found]
    if settle:
        for node in found:
            masks = [k for k, v in getattr(node, "items", dict)() if isinstance(v, tv_tensors.Mask)]
            if masks:
                raise ValueError(
                    f"{owner}: expected detection targets without instance masks, got Mask "
                    f"entries {masks}; mixing per-object masks (Mask R-CNN targets) is not "
                    "supported."
                )
        _settle_per_box(owner, targets)
    return targets


def _refuse_split_targets(owner: str, node: Mapping[str, Any]) -> None:
    """Refuses a mapping (or a sequence, its items named by position) that holds the batch's
    boxes as one list and their labels (or other per-box tensors, one row per box) as other
    lists: the boxes would be mixed and the rest left behind. Lists of per-image entries
    (``image_id``, sizes) may sit beside them."""
    lists = {
        k: v for k, v in node.items() if isinstance(v, list | tuple) and k not in _PER_IMAGE_KEYS
    }
    boxed = [
        k for k, v in lists.items() if v and all(isinstance(b, tv_tensors.BoundingBoxes) for b in v)
    ]
    for key in boxed:
        counts = [b.shape[0] for b in lists[key]]
        beside = [
            k
            for k, v in lists.items()
            if k != key
            and len(v) == len(counts)
            and all(
                isinstance(e, Tensor) and e.ndim >= 1 and e.shape[0] == n
                for e, n in zip(v, counts, strict=True)
            )
        ]
        if beside:
            raise ValueError(
                f"{owner}: expected one detection target per sample (a list of dicts such as "
                f"{{'boxes': ..., 'labels': ...}}), got {key!r} as a list of BoundingBoxes beside "
                f"the lists of per-box entries {beside}, which would not follow their boxes; "
                "zip them into one dict per sample."
            )


# Entries of a target dict that describe the image, never one of its boxes.
_PER_IMAGE_KEYS = frozenset(
    {"image_id", "img_id", "id", "idx", "index", "orig_size", "size", "image_size", "img_size"}
)
# Entries that are per-box in torchvision's and COCO's detection targets: one of these that is
# not per-box in some target is an error rather than a guess.
_PER_BOX_KEYS = frozenset(
    {"labels", "area", "iscrowd", "masks", "keypoints", "scores", "difficult", "ignore"}
)


def _settle_per_box(owner: str, targets: list[BoxTarget]) -> None:
    """Decides, for the whole batch, which dict entries are per-box: those whose first
    dimension equals the box count in every target, except names of ``_PER_IMAGE_KEYS``
    (``image_id`` of shape ``(1,)`` describes the image even when it has one box). An entry
    that is per-box in some targets only stays with its sample, unless its name is one of
    ``_PER_BOX_KEYS``, which is an error; so is a per-box entry whose trailing shape or dtype
    differs between targets (they are concatenated). Raised here, before anything is mixed."""
    keys = set().union(*(t.per_box for t in targets)) - _PER_IMAGE_KEYS
    per_box = set()
    for key in sorted(keys):
        missing = [i for i, t in enumerate(targets) if key not in t.per_box]
        if missing and key in _PER_BOX_KEYS:
            raise ValueError(
                f"{owner}: expected the detection entry {key!r} to hold one row per box in "
                f"every target, got targets {missing} without such rows."
            )
        if missing:
            continue  # describes its sample, whatever its length
        kinds = {(tuple(t.per_box[key].shape[1:]), t.per_box[key].dtype) for t in targets}
        if len(kinds) > 1:
            found = ", ".join(f"{shape} {dtype}" for shape, dtype in sorted(kinds, key=str))
            raise ValueError(
                f"{owner}: expected the per-box entry {key!r} to have one trailing shape and "
                f"dtype in every detection target, got {found}."
            )
        per_box.add(key)
    for target in targets:
        target.per_box = {k: v for k, v in target.per_box.items() if k in per_box}


def _parse_target(owner: str, node: Any, size: tuple[int, int]) -> BoxTarget:
    container: tuple[Mapping[str, Any], str] | None = None
    if isinstance(node, tv_tensors.BoundingBoxes):
        boxes = node
    else:
        keys = [k for k, v in node.items() if isinstance(v, tv_tensors.BoundingBoxes)]
        if len(keys) != 1:
            raise ValueError(
                f"{owner}: expected one BoundingBoxes entry per target, got keys {keys}."
            )
        container, boxes = (node, keys[0]), node[keys[0]]
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(
            f"{owner}: expected BoundingBoxes of shape (N, 4) per sample, got {tuple(boxes.shape)}."
        )
    if tuple(boxes.canvas_size) != size:
        raise ValueError(
            f"{owner}: expected BoundingBoxes with canvas_size {size} like the images, "
            f"got {tuple(boxes.canvas_size)}."
        )
    xyxy = TF.convert_bounding_box_format(
        boxes.as_subclass(Tensor).to(torch.float64),
        old_format=boxes.format,
        new_format=tv_tensors.BoundingBoxFormat.XYXY,
    )
    count = boxes.shape[0]
    per_box = {}
    if container is not None:
        per_box = {
            k: v
            for k, v in container[0].items()
            if k not in (container[1], "weights")
            and isinstance(v, Tensor)
            and v.ndim >= 1
            and v.shape[0] == count
        }
    xyxy = xyxy.cpu()
    weights = torch.ones(count, dtype=torch.float64)
    return BoxTarget(xyxy, per_box, weights, container, boxes, xyxy.clone())


def target_member_ids(sample: Any) -> set[int]:
    """``id`` of every value inside a detection target dict (not images, not labels)."""
    members: set[int] = set()

    def visit(node: Any) -> Any | None:
        if isinstance(node, Mapping) and _is_target(node):
            members.update(id(value) for value in node.values())
            return node
        return None

    _walk(sample, visit)
    return members


def replace_targets(sample: Any, targets: list[BoxTarget]) -> Any:
    """``sample`` with its detection targets replaced, in batch order."""
    pending = iter(targets)

    def visit(node: Any) -> Any | None:
        return next(pending).build() if _is_target(node) else None

    return _walk(sample, visit)


# Geometry on XYXY float64 boxes (N, 4) and regions (x1, y1, x2, y2).


def _area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _inside(boxes: Tensor, region: Region) -> Tensor:
    """Whether each box lies within ``region`` (edges included)."""
    x1, y1, x2, y2 = region
    return (boxes[:, 0] >= x1) & (boxes[:, 1] >= y1) & (boxes[:, 2] <= x2) & (boxes[:, 3] <= y2)


def clip_to(boxes: Tensor, region: Region) -> tuple[Tensor, Tensor]:
    """Boxes cut to ``region`` and the share of each box that lies inside it; a box without
    area (a point or a line) is all inside or all outside."""
    x1, y1, x2, y2 = region
    lo = torch.tensor([x1, y1], dtype=boxes.dtype)
    hi = torch.tensor([x2, y2], dtype=boxes.dtype)
    clipped = torch.cat([torch.maximum(boxes[:, :2], lo), torch.minimum(boxes[:, 2:], hi)], dim=1)
    clipped[:, 2:] = torch.maximum(clipped[:, 2:], clipped[:, :2])
    area = _area(boxes)
    share = torch.where(
        area > 0,
        _area(clipped) / area.clamp(min=1e-12),
        _inside(boxes, region).to(boxes.dtype),
    )
    return clipped, share


def remove_region(boxes: Tensor, region: Region) -> tuple[Tensor, Tensor]:
    """Boxes after ``region`` is pasted over them: the visible share, and the boxes shrunk
    where the region covers them across their whole width or height."""
    inside, _ = clip_to(boxes, region)
    area = _area(boxes)
    # (area − covered) / area rather than 1 − share, so that a share exactly at the threshold
    # is not lost to rounding; a box without area is covered when it lies within the region.
    visible = torch.where(
        area > 0,
        (area - _area(inside)) / area.clamp(min=1e-12),
        (~_inside(boxes, region)).to(boxes.dtype),
    )
    x1, y1, x2, y2 = region
    out = boxes.clone()
    spans_x = (x1 <= boxes[:, 0]) & (x2 >= boxes[:, 2])
    spans_y = (y1 <= boxes[:, 1]) & (y2 >= boxes[:, 3])
    covers_top = spans_x & (y1 <= boxes[:, 1]) & (y2 > boxes[:, 1])
    covers_bottom = spans_x & (y2 >= boxes[:, 3]) & (y1 < boxes[:, 3])
    covers_left = spans_y & (x1 <= boxes[:, 0]) & (x2 > boxes[:, 0])
    covers_right = spans_y & (x2 >= boxes[:, 2]) & (x1 < boxes[:, 2])
    out[:, 1] = torch.where(
        covers_top, torch.full_like(out[:, 1], y2).minimum(boxes[:, 3]), out[:, 1]
    )
    out[:, 3] = torch.where(
        covers_bottom, torch.full_like(out[:, 3], y1).maximum(boxes[:, 1]), out[:, 3]
    )
    out[:, 0] = torch.where(
        covers_left, torch.full_like(out[:, 0], x2).minimum(boxes[:, 2]), out[:, 0]
    )
    out[:, 2] = torch.where(
        covers_right, torch.full_like(out[:, 2], x1).maximum(boxes[:, 0]), out[:, 2]
    )
    return out, visible


def paste(
    own: BoxTarget,
    partner: BoxTarget,
    region: Region,
    min_visibility: float,
    scale: tuple[float, float] | None = None,
) -> BoxTarget:
    """Boxes after the partner's pixels are pasted into ``region`` of the sample.

    Without ``scale`` the partner's pixels stay where they were (CutMix); with
    ``scale=(sx, sy)`` the whole partner image was resized by it into the region (ResizeMix).
    """
    x1, y1, x2, y2 = region
    if x2 <= x1 or y2 <= y1:
        return own
    kept_boxes, visible = remove_region(own.boxes, region)
    result = own.subset(_kept(visible, min_visibility), kept_boxes)
    if scale is None:
        moved, share = clip_to(partner.boxes, region)
    else:
        offset = torch.tensor([x1, y1, x1, y1], dtype=partner.boxes.dtype)
        factor = torch.tensor([scale[0], scale[1], scale[0], scale[1]], dtype=partner.boxes.dtype)
        moved, share = clip_to(partner.boxes * factor + offset, region)
    return result.concat(partner.subset(_kept(share, min_visibility), moved))


def _kept(visible: Tensor, min_visibility: float) -> Tensor:
    """Boxes that stay: some of them visible, and at least ``min_visibility`` of them."""
    return (visible >= min_visibility) & (visible > 0)


def tile(sources: list[BoxTarget], regions: list[Region], min_visibility: float) -> BoxTarget:
    """Mosaic: each source's boxes cut to its tile. A source that fills several tiles forming
    one rectangle (small batches repeat sources: two tiles side by side, or all four) has its
    boxes cut to that rectangle, so an object across them stays one box; tiles of one source
    that do not form a rectangle (diagonal ones) cut its boxes separately."""
    groups: dict[int, tuple[BoxTarget, list[Region]]] = {}
    for source, region in zip(sources, regions, strict=True):
        groups.setdefault(id(source), (source, []))[1].append(region)
    parts = []
    for source, own in groups.values():
        cover = (
            min(r[0] for r in own),
            min(r[1] for r in own),
            max(r[2] for r in own),
            max(r[3] for r in own),
        )
        if _region_area(cover) == sum(_region_area(r) for r in own):  # tiles never overlap
            own = [cover]
        for region in own:
            moved, share = clip_to(source.boxes, region)
            parts.append(source.subset(_kept(share, min_visibility), moved))
    result = parts[0]  # the sample's own target, whose container the output keeps
    for part in parts[1:]:
        result = result.concat(part)
    return result


def _region_area(region: Region) -> float:
    return max(region[2] - region[0], 0.0) * max(region[3] - region[1], 0.0)


def blend(own: BoxTarget, partner: BoxTarget, lam: float) -> BoxTarget:
    """MixUp: both samples' boxes, weighted λ and 1−λ; boxes whose weight comes to 0 (a sample
    left unmixed, λ = 1, or entirely replaced, λ = 0) are not in the image and are dropped."""
    own_weights, partner_weights = own.weights * lam, partner.weights * (1.0 - lam)
    mine = own.subset(own_weights > 0, own.boxes, own_weights)
    theirs = partner.subset(partner_weights > 0, partner.boxes, partner_weights)
    return mine.concat(theirs)

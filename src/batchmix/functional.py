"""Deterministic kernels: every random quantity (λ, boxes, partner index) is an argument.

The transforms in :mod:`batchmix.transforms` draw their parameters with :mod:`batchmix.sampling`
and call these kernels; tests call them with pinned parameters and compare against torchvision
and timm. Conventions shared by all kernels:

* ``images`` has the batch first and the spatial axes last: ``(B, C, H, W)``, ``(B, T, C, H, W)``
  or any ``(B, ..., H, W)``. Any floating dtype and ``uint8`` are accepted; the output keeps the
  dtype, device and memory format of the input.
* ``index`` is an int64 tensor of shape ``(B,)``: sample ``i`` is mixed with ``images[index[i]]``.
* ``lam`` is the weight of the *original* sample: a Python float (one λ for the batch) or a
  float64 tensor of shape ``(B,)`` (one per sample).
* A box is ``(x1, y1, x2, y2)`` in pixels, half-open: rows ``y1:y2`` and columns ``x1:x2``. One box
  for the whole batch is a tuple of ints; one box per sample is an int64 tensor of shape ``(B, 4)``.
* ``out=None`` allocates exactly one output tensor; ``out=images`` mixes in place; any other
  tensor of the same shape and dtype receives the result.
* On the CPU, :func:`mixup`, :func:`cutmix` and :func:`cutout` run as compiled loops
  (:mod:`batchmix._loops`) where :mod:`batchmix._fast` finds them applicable, and as PyTorch
  ops otherwise; both give the same values.

Papers: MixUp (Zhang et al., ICLR 2018), CutMix (Yun et al., ICCV 2019),
CutOut (DeVries & Taylor, 2017).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from batchmix import _fast, _memory

__all__ = [
    "Box",
    "box_mask",
    "cutmix",
    "cutout",
    "jigsaw",
    "mask_mix",
    "mix_index_labels",
    "mix_labels",
    "mix_labels_multi",
    "mixup",
    "mosaic",
    "one_hot",
    "resizemix",
    "smooth_labels",
]

Box = tuple[int, int, int, int]

# Work on chunks of about this many elements so that temporaries stay in cache.
_CHUNK_ELEMENTS = 1 << 18
# Per-sample boxes are copied with one slice per sample when a sample has at least this many
# elements; below it, one vectorised masked select over the batch is faster (see benchmarks/).
_LOOP_MIN_ELEMENTS = 1 << 14


def _compiling() -> bool:
    return bool(torch.compiler.is_compiling())


def _to_device_of(index: Tensor, like: Tensor) -> Tensor:
    """``index.to(like.device)``; two CPU tensors skip the call (a device object and a dispatch,
    which cost more than the check on the per-call path)."""
    if index.is_cpu and like.is_cpu:
        return index
    return index.to(like.device)


def _chunks(batch_size: int, sample_numel: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_ELEMENTS // max(1, sample_numel))
    return [(start, min(start + step, batch_size)) for start in range(0, batch_size, step)]


def _prepare_out(name: str, images: Tensor, out: Tensor | None) -> Tensor:
    if out is None:
        return _memory.empty_like(images)
    if out.shape != images.shape or out.dtype != images.dtype or out.device != images.device:
        raise ValueError(
            f"{name}: out must match images in shape, dtype and device: expected {tuple(images.shape)} "
            f"{images.dtype} on {images.device}, got {tuple(out.shape)} {out.dtype} on {out.device}."
        )
    if out is not images and not _compiling() and _same_storage(out, images):
        raise ValueError(
            f"{name}: expected out to be the images themselves or memory apart from them, got a "
            "view that shares their storage (the kernel would read pixels it has already "
            "written); pass out=images to mix in place, or a separate tensor."
        )
    return out


def _same_storage(a: Tensor, b: Tensor) -> bool:
    """Whether two non-empty tensors use one storage (``False`` for tensors without one)."""
    if not (a.numel() and b.numel()):
        return False
    try:
        return bool(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # functorch-wrapped tensors have no storage
        return False


def _check_lam(name: str, lam: float | Tensor, images: Tensor, *, unit: bool) -> None:
    """λ a number or a tensor of shape (), (1,) or (B,); with ``unit``, finite and in [0, 1]
    (uint8 MixUp, whose levels would wrap around), checked where it can be without a device
    sync or a data-dependent branch (on the CPU, not while compiling, not under vmap)."""
    batch = images.shape[0]
    if isinstance(lam, Tensor):
        if not (lam.ndim == 0 or (lam.ndim == 1 and lam.shape[0] in (1, batch))):
            raise ValueError(
                f"{name}: expected lam as a number or a tensor of shape () or ({batch},), got "
                f"{tuple(lam.shape)}."
            )
        if lam.is_complex():
            raise ValueError(f"{name}: expected real lam, got {lam.dtype}.")
        if (
            not unit
            or not lam.numel()
            or _compiling()
            or not lam.is_cpu
            or torch._C._functorch.is_functorch_wrapped_tensor(lam)
        ):
            return
        values = lam.detach().to(torch.float64)
        inside = bool(((values >= 0.0) & (values <= 1.0)).all())
        shown = f"values from {float(values.min())} to {float(values.max())}"
    else:
        if not unit:
            return
        inside = 0.0 <= float(lam) <= 1.0
        shown = repr(lam)
    if not inside:
        raise ValueError(
            f"{name}: expected lam in [0, 1] for {images.dtype} images (a mix outside it leaves "
            f"their range), got {shown}."
        )


def _check_index(name: str, index: Tensor, images: Tensor) -> None:
    """Partner indices of shape ``(B,)`` in ``[0, B)``; the range is checked on CPU indices
    only (the transforms draw them there), not while compiling (a data-dependent branch) nor on
    a GPU (a device sync per call). The compiled loops check the same themselves."""
    batch = images.shape[0]
    if (
        index.ndim != 1
        or index.shape[0] != batch
        or index.is_floating_point()
        or (index.dtype == torch.bool)
    ):
        raise ValueError(
            f"{name}: expected index to hold integer partner indices of shape ({batch},), got "
            f"{tuple(index.shape)} {index.dtype}."
        )
    if batch and not _compiling() and index.is_cpu:  # no device sync per call
        if _fast.indices_inside(index, batch):  # the compiled check, where it applies
            return
        bounds = torch.aminmax(index)
        low, high = int(bounds.min), int(bounds.max)
        if low < 0 or high >= batch:
            raise ValueError(
                f"{name}: expected partner indices in [0, {batch}), got values from {low} to {high}."
            )


def _check_boxes(name: str, boxes: Box | Tensor, images: Tensor) -> None:
    """One ``(x1, y1, x2, y2)`` tuple of non-negative ints or ``(B, 4)`` integer boxes; bounds
    past the image's edge are clipped to it, an empty box (x2 <= x1 or y2 <= y1) changes
    nothing. Negative boxes in a tensor are not looked for while compiling."""
    if isinstance(boxes, tuple):
        ints = len(boxes) == 4 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in boxes
        )
        if not ints or min(boxes) < 0:
            raise ValueError(
                f"{name}: expected a box (x1, y1, x2, y2) of non-negative ints, got {boxes!r}."
            )
        return
    batch = images.shape[0]
    if (
        not isinstance(boxes, Tensor)
        or boxes.shape != (batch, 4)
        or boxes.is_floating_point()
        or boxes.dtype == torch.bool
    ):
        shown = f"{tuple(boxes.shape)} {boxes.dtype}" if isinstance(boxes, Tensor) else repr(boxes)
        raise ValueError(
            f"{name}: expected boxes as a tuple (x1, y1, x2, y2) or a ({batch}, 4) integer "
            f"tensor, got {shown}."
        )
    if batch and not _compiling() and boxes.is_cpu and bool((boxes < 0).any()):
        raise ValueError(f"{name}: expected non-negative box coordinates, got {boxes.tolist()}.")


def _tracked(*tensors: object) -> bool:
    """Whether autograd records this call, or functorch (``torch.vmap``, ``torch.func.grad``)
    wraps a tensor: ops with ``out=`` can be neither recorded nor batched, so the kernels then
    build the result with plain ops (same values) and copy it into ``out``."""
    if not _compiling():  # (dynamo cannot trace the check; it traces vmap on its own)
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor
        if any(isinstance(t, Tensor) and wrapped(t) for t in tensors):
            return True
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def _deliver(name: str, result: Tensor, images: Tensor, out: Tensor | None) -> Tensor:
    """``result`` itself (in the images' memory layout), or copied into ``out`` (``images``
    for in place), checked first."""
    if out is None:
        if result.stride() != images.stride():  # e.g. channels-last images
            return torch.empty_like(images).copy_(result)
        return result
    if out is not images:
        _prepare_out(name, images, out)
    return out.copy_(result)


def _weights(
    lam: float | Tensor, like: Tensor, dtype: torch.dtype
) -> tuple[float | Tensor, float | Tensor]:
    """The weights λ and 1−λ, computed in float64 and then cast, shaped to broadcast over ``like``."""
    if isinstance(lam, Tensor):
        shape = (-1,) + (1,) * (like.ndim - 1)
        lam64 = lam.to(device=like.device, dtype=torch.float64)
        return lam64.to(dtype).view(shape), (1.0 - lam64).to(dtype).view(shape)
    return float(lam), 1.0 - float(lam)


def _rows(weight: float | Tensor, start: int, stop: int) -> float | Tensor:
    return weight[start:stop] if isinstance(weight, Tensor) else weight


class _Partners:
    """Reads partner rows chunk by chunk, also while the batch is overwritten in place.

    The batch is processed in chunks of rows. In place, a partner row whose chunk is processed
    before the chunk of the row reading it is overwritten before it is read, so exactly those
    rows are copied aside first. Chunks go in whichever direction needs fewer copies: for
    ``"roll"`` pairing (i reads i−1) that is top-down, and a single row is copied aside.
    """

    def __init__(self, source: Tensor, index: Tensor, inplace: bool) -> None:
        batch = source.shape[0]
        self.source = source
        self.index = index
        self.chunks = _chunks(batch, source[0].numel() if batch else 0)
        self.saved: Tensor | None = None
        self.scratch: Tensor | None = None
        self.index_list: list[int] | None = None
        if not inplace or len(self.chunks) == 1:
            return
        chunk_of = torch.empty(batch, dtype=torch.long)
        for k, (start, stop) in enumerate(self.chunks):
            chunk_of[start:stop] = k
        partner_chunk = chunk_of[index.cpu()]
        ascending, descending = partner_chunk < chunk_of, partner_chunk > chunk_of
        self.preserve = ascending
        if int(descending.sum()) < int(ascending.sum()):
            self.chunks.reverse()
            self.preserve = descending
        if bool(self.preserve.any()):
            self.slot = torch.cumsum(self.preserve.long(), 0) - 1
            self.saved = source.index_select(0, index[self.preserve.to(index.device)])

    def rows(self, start: int, stop: int, weight: float | Tensor | None = None) -> Tensor:
        """The partners of rows ``start:stop`` as they were before any write, times ``weight``.

        The result lives in a scratch buffer that the next call overwrites.
        """
        if self.scratch is None:
            longest = max(stop - start for start, stop in self.chunks)
            self.scratch = self.source.new_empty((longest, *self.source.shape[1:]))
        scratch = self.scratch[: stop - start]
        keep = None if self.saved is None else self.preserve[start:stop]
        first = self._contiguous_start(start, stop)
        if first is not None and weight is not None and (keep is None or not bool(keep.any())):
            # Partners form one block of rows (e.g. "roll"): read them once, no gather.
            return torch.mul(self.source[first : first + stop - start], weight, out=scratch)
        partner = torch.index_select(self.source, 0, self.index[start:stop], out=scratch)
        if keep is not None and self.saved is not None and bool(keep.any()):
            slots = self.slot[start:stop][keep].to(self.saved.device)
            partner[keep.to(partner.device)] = self.saved.index_select(0, slots)
        return partner if weight is None else partner.mul_(weight)

    def _contiguous_start(self, start: int, stop: int) -> int | None:
        if self.index_list is None:
            self.index_list = self.index.tolist()
        rows = self.index_list[start:stop]
        if rows == list(range(rows[0], rows[0] + len(rows))):
            return int(rows[0])
        return None


def mixup(
    images: Tensor, index: Tensor, lam: float | Tensor, *, out: Tensor | None = None
) -> Tensor:
    """MixUp: ``out[i] = lam[i] · images[i] + (1 − lam[i]) · images[index[i]]``.

    Floating images are combined in their own dtype with the same arithmetic as torchvision
    (two products, then a sum), so ``index = roll`` reproduces ``v2.MixUp`` bit for bit.
    ``uint8`` images are combined in float32 and rounded to the nearest level.

    Args:
        images: ``(B, ..., H, W)`` floating or uint8 tensor.
        index: ``(B,)`` int64 partner indices.
        lam: weight of the original sample, a number or a real tensor of shape ``()``,
            ``(1,)`` or ``(B,)`` (float64 keeps torchvision's arithmetic); in [0, 1] for
            uint8 images.
        out: where to write the result; ``images`` itself mixes in place; another tensor must
            not share the images' storage.

    Returns:
        The mixed batch, ``out`` when given.

    Example:
        >>> x = torch.rand(4, 3, 8, 8)
        >>> y = mixup(x, torch.tensor([3, 0, 1, 2]), 0.7)
        >>> torch.allclose(y[1], 0.7 * x[1] + 0.3 * x[0])
        True
    """
    floating = images.is_floating_point()
    if not floating and images.dtype != torch.uint8:
        raise TypeError(f"mixup: expected floating or uint8 images, got {images.dtype}.")
    _check_lam("mixup", lam, images, unit=not floating)
    if not images.is_cpu:  # checked where the index is, before it moves
        _check_index("mixup", index, images)
    index = _to_device_of(index, images)
    if not floating and isinstance(lam, Tensor):
        lam = lam.detach()  # uint8 levels carry no gradient
    if _tracked(images, out, lam):
        _check_index("mixup", index, images)
        if not floating:  # under vmap: the float32 arithmetic and rounding of the other paths
            w, w1 = _weights(lam, images, torch.float32)
            partner = images.index_select(0, index).to(torch.float32) * w1
            mixed = (images.to(torch.float32) * w + partner).round().to(torch.uint8)
            return _deliver("mixup", mixed, images, out)
        w, w1 = _weights(lam, images, images.dtype)
        return _deliver("mixup", images.index_select(0, index) * w1 + images * w, images, out)
    inplace = out is images
    target = images if inplace else _prepare_out("mixup", images, out)
    if _fast.mixup(images, target, index, lam):
        return target
    _check_index("mixup", index, images)
    w, w1 = _weights(lam, images, images.dtype if floating else torch.float32)
    if _compiling() or not images.is_cpu:
        # One vectorised pass; on accelerators temporaries come from the caching allocator.
        if floating:
            partner = images.index_select(0, index).mul_(w1)
            if inplace:
                return images.mul_(w).add_(partner)
            return torch.add(partner, images * w, out=target)
        # uint8: the chunked path's arithmetic (float32 products, sum, rounding) in one go.
        partner = images.index_select(0, index).to(torch.float32).mul_(w1)
        return target.copy_(images.to(torch.float32).mul_(w).add_(partner).round_())
    # On the CPU, chunks of rows keep temporaries small and in cache: no batch-sized temporary.
    partners = _Partners(images, index, inplace)
    longest = max((stop - start for start, stop in partners.chunks), default=0)
    if not floating:
        # Integer images are combined in float32 scratch rows, reused for every chunk. Casts
        # go through plain copies: an op that mixes uint8 and float32 operands, or a direct
        # float32 -> uint8 copy, takes a slower path in PyTorch's CPU kernels than a
        # uint8 -> float32 copy followed by float32 arithmetic, and float32 -> int16 -> uint8.
        scratch = torch.empty((2, longest, *images.shape[1:]), device=images.device)
        levels = torch.empty((longest, *images.shape[1:]), dtype=torch.int16, device=images.device)
    for start, stop in partners.chunks:
        rows_w, rows_w1 = _rows(w, start, stop), _rows(w1, start, stop)
        if floating:
            partner = partners.rows(start, stop, rows_w1)
            if inplace:
                images[start:stop].mul_(rows_w).add_(partner)
            else:
                torch.mul(images[start:stop], rows_w, out=target[start:stop]).add_(partner)
        else:
            count = stop - start
            mixed = scratch[0, :count].copy_(images[start:stop]).mul_(rows_w)
            weighted = scratch[1, :count].copy_(partners.rows(start, stop)).mul_(rows_w1)
            # A convex mix of values in [0, 255] stays in range: rounding is all that is left.
            rounded = levels[:count].copy_(mixed.add_(weighted).round_())
            target[start:stop].copy_(rounded)
    return target


def box_mask(boxes: Tensor, height: int, width: int, device: torch.device | None = None) -> Tensor:
    """Boolean masks ``(n, H, W)`` that are ``True`` inside each box of ``boxes`` ``(n, 4)``."""
    boxes = boxes.to(device)
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    x1, y1, x2, y2 = (boxes[:, k].view(-1, 1, 1) for k in range(4))
    return (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)


def _broadcast_mask(boxes: Tensor, images: Tensor) -> Tensor:
    height, width = images.shape[-2:]
    mask = box_mask(boxes, height, width, images.device)
    return mask.view((images.shape[0],) + (1,) * (images.ndim - 3) + (height, width))


def _use_loop(images: Tensor) -> bool:
    return not _compiling() and images.shape[0] > 0 and images[0].numel() >= _LOOP_MIN_ELEMENTS


def cutmix(
    images: Tensor, index: Tensor, boxes: Box | Tensor, *, out: Tensor | None = None
) -> Tensor:
    """CutMix: inside the box of sample ``i``, its pixels are replaced by ``images[index[i]]``'s.

    The label weight that goes with it is the share of pixels kept, ``1 − box area / (H·W)``
    (see :func:`batchmix.sampling.box_area_fraction`).

    Args:
        images: ``(B, ..., H, W)`` tensor of any dtype.
        index: ``(B,)`` int64 partner indices.
        boxes: one ``(x1, y1, x2, y2)`` tuple for every sample, or a ``(B, 4)`` int64 tensor.
        out: where to write the result; ``images`` itself mixes in place.

    Returns:
        The mixed batch, ``out`` when given.

    Example:
        >>> x = torch.zeros(2, 1, 4, 4); x[1] = 1
        >>> cutmix(x, torch.tensor([1, 0]), (0, 0, 2, 2))[0, 0]
        tensor([[1., 1., 0., 0.],
                [1., 1., 0., 0.],
                [0., 0., 0., 0.],
                [0., 0., 0., 0.]])
    """
    if not images.is_cpu:  # checked where the index is, before it moves
        _check_index("cutmix", index, images)
    index = _to_device_of(index, images)
    if _tracked(images, out):
        _check_index("cutmix", index, images)
        _check_boxes("cutmix", boxes, images)
        partner = images.index_select(0, index)
        if isinstance(boxes, tuple):
            x1, y1, x2, y2 = boxes
            mixed = images.clone()
            mixed[..., y1:y2, x1:x2] = partner[..., y1:y2, x1:x2]
        else:
            mixed = torch.where(_broadcast_mask(boxes, images), partner, images)
        return _deliver("cutmix", mixed, images, out)
    inplace = out is images
    target = images if inplace else _prepare_out("cutmix", images, out)
    if _fast.copy_boxes(images, target, index, boxes):
        return target
    _check_index("cutmix", index, images)
    _check_boxes("cutmix", boxes, images)
    if isinstance(boxes, tuple):
        x1, y1, x2, y2 = boxes
        if not inplace:
            target.copy_(images)
        region, target_region = images[..., y1:y2, x1:x2], target[..., y1:y2, x1:x2]
        if _compiling() or region.numel() == 0:
            target_region.copy_(region.index_select(0, index))
            return target
        if region[0].numel() >= _LOOP_MIN_ELEMENTS:
            _copy_rows(region, target_region, index.tolist(), inplace)
            return target
        partners = _Partners(region, index, inplace)
        for start, stop in partners.chunks:
            target_region[start:stop] = partners.rows(start, stop)
        return target
    if _use_loop(images):
        if not inplace:
            target.copy_(images)
        _copy_rows(images, target, index.tolist(), inplace, boxes.tolist())
        return target
    partner = images.index_select(0, index)
    return torch.where(_broadcast_mask(boxes, images), partner, images, out=target)


def _copy_rows(
    source: Tensor,
    target: Tensor,
    index: list[int],
    inplace: bool,
    boxes: list[list[int]] | None = None,
) -> None:
    """``target[i] = source[index[i]]`` row by row (inside ``boxes[i]`` when given).

    In place (``target`` is ``source``), each cycle of the permutation is followed so that a
    row is read before it is overwritten; only what the cycle's last row needs from its first
    row is copied aside.
    """

    def part(tensor: Tensor, row: int, owner: int) -> Tensor:
        if boxes is None:
            return tensor[row]
        x1, y1, x2, y2 = boxes[owner]
        return tensor[row, ..., y1:y2, x1:x2]

    if not inplace:
        for i, j in enumerate(index):
            part(target, i, i).copy_(part(source, j, i))
        return
    if sorted(index) != list(range(len(index))):
        # Not a permutation (a row is the partner of several rows): read every part first.
        parts = [part(source, j, i).clone() for i, j in enumerate(index)]
        for i, saved in enumerate(parts):
            part(source, i, i).copy_(saved)
        return
    done = [False] * len(index)
    for start in range(len(index)):
        if done[start] or index[start] == start:
            continue
        cycle = [start]
        while index[cycle[-1]] != start:
            cycle.append(index[cycle[-1]])
        last = cycle[-1]
        saved = part(source, start, last).clone()
        for i in cycle[:-1]:
            part(source, i, i).copy_(part(source, index[i], i))
            done[i] = True
        part(source, last, last).copy_(saved)
        done[last] = True


def cutout(
    images: Tensor, boxes: Box | Tensor, value: float = 0.0, *, out: Tensor | None = None
) -> Tensor:
    """CutOut: fills the box of every sample with ``value``.

    Args:
        images: ``(B, ..., H, W)`` tensor of any dtype.
        boxes: one ``(x1, y1, x2, y2)`` tuple for every sample, or a ``(B, 4)`` int64 tensor.
        value: fill value, cast to the images' dtype.
        out: where to write the result; ``images`` itself works in place.

    Returns:
        The batch with boxes filled, ``out`` when given.

    Example:
        >>> cutout(torch.ones(1, 1, 3, 3), (1, 1, 3, 3))[0, 0]
        tensor([[1., 1., 1.],
                [1., 0., 0.],
                [1., 0., 0.]])
    """
    target = images if out is images else _prepare_out("cutout", images, out)
    if _fast.fill_boxes(target, boxes, value, source=images):
        return target
    _check_boxes("cutout", boxes, images)
    if not _compiling() and not _tracked(images, out):
        torch.full((), value, dtype=images.dtype)  # a value the dtype cannot hold: raised here
    if target is not images:
        target.copy_(images)
    if isinstance(boxes, tuple):
        x1, y1, x2, y2 = boxes
        target[..., y1:y2, x1:x2] = value
        return target
    if _use_loop(images):
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            target[i, ..., y1:y2, x1:x2] = value
        return target
    return target.masked_fill_(_broadcast_mask(boxes, images), value)


def one_hot(
    labels: Tensor,
    num_classes: int,
    *,
    smoothing: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Class indices ``(B,)`` to rows ``(B, K)``, optionally smoothed.

    With smoothing ε, the true class gets ``1 − ε + ε/K`` and every other class ``ε/K``: the
    targets that ``torch.nn.CrossEntropyLoss(label_smoothing=ε)`` uses, and timm's values.
    """
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    rows = torch.full((labels.shape[0], num_classes), off, dtype=dtype, device=labels.device)
    return rows.scatter_(1, labels.long().unsqueeze(1), on)


def smooth_labels(labels: Tensor, smoothing: float, *, multi_label: bool = False) -> Tensor:
    """Smooths ``(B, K)`` rows as ``(1 − ε) · y + ε/K`` (a new tensor; unchanged when ε = 0).

    With ``multi_label``, each of the K independent 0/1 targets moves towards 0.5 instead:
    ``(1 − ε) · y + ε/2``, timm's ``mixup_target(..., multi_label=True)``.
    """
    if smoothing == 0.0:
        return labels
    if multi_label:
        return labels * (1.0 - smoothing) + 0.5 * smoothing
    return labels * (1.0 - smoothing) + smoothing / labels.shape[-1]


def mix_labels(labels: Tensor, index: Tensor, lam: float | Tensor) -> Tensor:
    """``lam[i] · labels[i] + (1 − lam[i]) · labels[index[i]]`` for floating ``(B, K)`` rows."""
    _check_index("mix_labels", index, labels)
    _check_lam("mix_labels", lam, labels, unit=False)
    index = _to_device_of(index, labels)
    w, w1 = _weights(lam, labels, labels.dtype)
    partner = labels.index_select(0, index).mul_(w1)
    return partner.add_(labels * w)


def mix_index_labels(
    labels: Tensor,
    num_classes: int,
    index: Tensor,
    lam: float | Tensor,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``mix_labels(one_hot(labels, num_classes), index, lam)`` without the one-hot rows.

    Each row gets ``lam[i]`` at class ``labels[i]`` and ``1 − lam[i]`` at ``labels[index[i]]``
    (their sum when the two classes agree): one write of the ``(B, K)`` rows instead of six
    passes over them, with the same values, bit for bit.
    """
    # The compiled path checks the labels and the index itself (and leaves bad ones to the
    # checks below); λ needs no check there: a number, or a (B,) tensor it takes as it is.
    fast = _fast.index_rows(labels, num_classes, index, lam, dtype)
    if fast is not None:
        return fast
    _check_index("mix_index_labels", index, labels)
    _check_lam("mix_index_labels", lam, labels, unit=False)
    index = _to_device_of(index, labels)
    batch = labels.shape[0]
    w, w1 = _weights(lam, labels.unsqueeze(1), dtype)
    own = w.expand(batch, 1) if isinstance(w, Tensor) else torch.full((batch, 1), w, dtype=dtype)
    other = (
        w1.expand(batch, 1) if isinstance(w1, Tensor) else torch.full((batch, 1), w1, dtype=dtype)
    )
    rows = torch.zeros((batch, num_classes), dtype=dtype, device=labels.device)
    rows.scatter_add_(1, labels.long().unsqueeze(1), own.to(labels.device))
    return rows.scatter_add_(1, labels.long()[index].unsqueeze(1), other.to(labels.device))


def mix_labels_multi(labels: Tensor, indices: Tensor, weights: Tensor) -> Tensor:
    """Rows mixed from several sources: ``Σ_q weights[q, i] · labels[indices[q, i]]``.

    Args:
        labels: ``(B, K)`` floating rows.
        indices: ``(Q, B)`` int64 source of each sample for each of the Q parts.
        weights: ``(Q, B)`` float64 weights; each column should sum to one.
    """
    if indices.ndim != 2 or weights.shape != indices.shape:
        raise ValueError(
            f"mix_labels_multi: expected indices and weights of one shape (Q, {labels.shape[0]}), "
            f"got {tuple(indices.shape)} and {tuple(weights.shape)}."
        )
    for row in indices:
        _check_index("mix_labels_multi", row, labels)
    indices = indices.to(labels.device)
    weights = weights.to(device=labels.device, dtype=torch.float64).to(labels.dtype)
    out = labels.index_select(0, indices[0]).mul_(weights[0].unsqueeze(1))
    for q in range(1, indices.shape[0]):
        out.add_(labels.index_select(0, indices[q]).mul_(weights[q].unsqueeze(1)))
    return out


def mask_mix(images: Tensor, index: Tensor, mask: Tensor, *, out: Tensor | None = None) -> Tensor:
    """Takes the partner's pixel wherever ``mask`` is ``True`` (FMix, GridMix).

    Args:
        images: ``(B, ..., H, W)`` tensor of any dtype.
        index: ``(B,)`` int64 partner indices.
        mask: ``(B, H, W)`` boolean, or ``(H, W)`` for the whole batch.
        out: where to write the result; ``images`` itself mixes in place.

    Example:
        >>> x = torch.zeros(2, 1, 2, 2); x[1] = 1
        >>> mask_mix(x, torch.tensor([1, 0]), torch.tensor([[True, False], [False, True]]))[0, 0]
        tensor([[1., 0.],
                [0., 1.]])
    """
    if not images.is_cpu:  # checked where the index is, before it moves
        _check_index("mask_mix", index, images)
    index = _to_device_of(index, images)
    _check_index("mask_mix", index, images)
    height, width = images.shape[-2:]
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    lead = mask.shape[0]
    mask = mask.to(images.device).view((lead,) + (1,) * (images.ndim - 3) + (height, width))
    if _tracked(images, out, mask):
        return _deliver(
            "mask_mix", torch.where(mask, images.index_select(0, index), images), images, out
        )
    target = images if out is images else _prepare_out("mask_mix", images, out)
    return torch.where(mask, images.index_select(0, index), images, out=target)


def jigsaw(
    images: Tensor, order: Tensor, grid: tuple[int, int], *, out: Tensor | None = None
) -> Tensor:
    """Rearranges the tiles of every image: the image is cut into a ``rows × cols`` grid of
    equal tiles, numbered row by row, and tile ``t`` of sample ``i`` receives the input's tile
    ``order[i, t]`` of the same sample.

    Args:
        images: ``(B, ..., H, W)`` tensor of any dtype, H divisible by ``rows`` and W by ``cols``.
        order: ``(B, rows·cols)`` integer source tile of every output tile (a permutation per
            row moves every tile; ``arange`` rows leave a sample as it is).
        grid: ``(rows, cols)``.
        out: where to write the result; ``images`` itself works in place.

    Example:
        >>> x = torch.arange(4.0).view(1, 1, 2, 2)
        >>> jigsaw(x, torch.tensor([[3, 2, 1, 0]]), (2, 2))[0, 0]
        tensor([[3., 2.],
                [1., 0.]])
    """
    rows, cols = grid
    batch, (height, width) = images.shape[0], images.shape[-2:]
    if images.ndim < 3 or rows < 1 or cols < 1 or height % rows or width % cols:
        raise ValueError(
            f"jigsaw: expected images (B, ..., H, W) with H divisible by {rows} and W by {cols}, "
            f"got {tuple(images.shape)}."
        )
    tiles = rows * cols
    if (
        order.shape != (batch, tiles)
        or order.is_floating_point()
        or order.is_complex()
        or order.dtype == torch.bool
    ):
        raise ValueError(
            f"jigsaw: expected order to hold integer tile indices of shape ({batch}, {tiles}), got "
            f"{tuple(order.shape)} {order.dtype}."
        )
    if batch and not _compiling() and order.is_cpu:
        bounds = torch.aminmax(order)
        if int(bounds.min) < 0 or int(bounds.max) >= tiles:
            raise ValueError(
                f"jigsaw: expected tile indices in [0, {tiles}), got values from "
                f"{int(bounds.min)} to {int(bounds.max)}."
            )
    # (B, ..., rows, th, cols, tw) -> (B, ..., rows·cols, th, tw): one row of tiles per sample.
    cut = images.view(*images.shape[:-2], rows, height // rows, cols, width // cols)
    flat = cut.transpose(-3, -2).flatten(-4, -3)
    lead = (batch,) + (1,) * (flat.ndim - 4)
    source = order.to(device=images.device, dtype=torch.long).view(*lead, tiles, 1, 1)
    moved = torch.gather(flat, -3, source.expand(flat.shape))
    result = moved.view(*moved.shape[:-3], rows, cols, *moved.shape[-2:])
    result = result.transpose(-3, -2).reshape(images.shape)
    return _deliver("jigsaw", result, images, out)


def _resize(images: Tensor, size: tuple[int, int], nearest: bool) -> Tensor:
    """Resizes ``(n, ..., H, W)`` to ``size``; bilinear with antialiasing, or nearest for labels."""
    lead = images.shape[:-2]
    flat = images.reshape((-1, 1, *images.shape[-2:]))
    if flat.dtype in (torch.float32, torch.float64):
        work = flat
    elif flat.dtype in (torch.int32, torch.int64):  # float32 holds integers up to 2**24 only
        work = flat.double()
    else:
        work = flat.float()
    if nearest:
        resized = torch.nn.functional.interpolate(work, size=size, mode="nearest-exact")
    else:
        resized = torch.nn.functional.interpolate(
            work, size=size, mode="bilinear", antialias=True, align_corners=False
        )
    if not images.is_floating_point():
        info = torch.iinfo(images.dtype) if images.dtype != torch.bool else None
        resized = resized.round_()
        if info is not None:
            # The largest value of the working float type that the integer type holds: int64's
            # maximum itself rounds up to 2**63 in float64, which would wrap around.
            top = float(info.max)
            if int(top) > info.max:
                top = math.nextafter(top, 0.0)
            resized = resized.clamp(info.min, top)
    return resized.to(images.dtype).reshape(lead + size)


def resizemix(
    images: Tensor,
    index: Tensor,
    boxes: Box | Tensor,
    *,
    nearest: bool = False,
    out: Tensor | None = None,
) -> Tensor:
    """ResizeMix: the whole partner image, resized to the box, is pasted into it.

    Args:
        images: ``(B, ..., H, W)`` floating or integer tensor.
        index: ``(B,)`` int64 partner indices.
        boxes: one ``(x1, y1, x2, y2)`` box for all samples or ``(B, 4)`` integer boxes, inside
            the image (not clipped: the whole partner is resized into the box).
        nearest: resize with nearest neighbours (for segmentation masks) instead of bilinear.
        out: where to write the result; ``images`` itself mixes in place.

    Example:
        >>> x = torch.zeros(2, 1, 4, 4); x[1] = 1
        >>> resizemix(x, torch.tensor([1, 0]), (0, 0, 2, 2))[0, 0, :2, :2]
        tensor([[1., 1.],
                [1., 1.]])
    """
    _check_index("resizemix", index, images)
    _check_boxes("resizemix", boxes, images)
    height, width = images.shape[-2:]
    index = _to_device_of(index, images)
    inplace = out is images
    rows = (
        [boxes] * images.shape[0]
        if isinstance(boxes, tuple)
        else [tuple(b) for b in boxes.tolist()]
    )
    outside = [b for b in rows if b[2] > width or b[3] > height]
    if outside:
        raise ValueError(
            f"resizemix: expected boxes inside the {height}×{width} image (the whole partner is "
            f"resized into the box), got {outside[0]}."
        )
    # Partners are read before any write, so in-place results equal out-of-place ones.
    if isinstance(boxes, tuple):
        x1, y1, x2, y2 = boxes
        patches = None
        if x2 > x1 and y2 > y1:
            patches = _resize(images.index_select(0, index), (y2 - y1, x2 - x1), nearest)
        target = images if inplace else _prepare_out("resizemix", images, out)
        if not inplace:
            target.copy_(images)
        if patches is not None:
            target[..., y1:y2, x1:x2] = patches
        return target
    partners = index.tolist()
    pasted = [
        _resize(images[j : j + 1], (y2 - y1, x2 - x1), nearest)[0] if x2 > x1 and y2 > y1 else None
        for j, (x1, y1, x2, y2) in zip(partners, rows, strict=True)
    ]
    target = images if inplace else _prepare_out("resizemix", images, out)
    if not inplace:
        target.copy_(images)
    for i, ((x1, y1, x2, y2), patch) in enumerate(zip(rows, pasted, strict=True)):
        if patch is not None:
            target[i, ..., y1:y2, x1:x2] = patch
    return target


def mosaic(
    images: Tensor,
    partners: Tensor,
    centres: tuple[int, int] | Tensor,
    *,
    out: Tensor | None = None,
) -> Tensor:
    """Mosaic: four images tile the output around a centre ``(cx, cy)``.

    The top-left tile keeps the sample's own pixels; the top-right, bottom-left and
    bottom-right tiles show the pixels at the same positions of ``images[partners[q, i]]`` for
    ``q = 0, 1, 2``.

    Args:
        images: ``(B, ..., H, W)`` tensor of any dtype.
        partners: ``(3, B)`` int64 sources of the other three tiles.
        centres: one ``(cx, cy)`` for the batch, or ``(B, 2)`` int64.
        out: where to write the result; ``images`` itself mixes in place.

    Example:
        >>> x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
        >>> mosaic(x, torch.tensor([[1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]), (1, 1))[0, 0]
        tensor([[0., 1.],
                [2., 3.]])
    """
    height, width = images.shape[-2:]
    if partners.ndim != 2 or partners.shape[0] != 3:
        raise ValueError(
            f"mosaic: expected partners of shape (3, {images.shape[0]}), got {tuple(partners.shape)}."
        )
    for row in partners:
        _check_index("mosaic", row, images)
    if isinstance(centres, tuple):
        ints = len(centres) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in centres
        )
        if not ints or not (0 <= centres[0] <= width and 0 <= centres[1] <= height):
            raise ValueError(
                f"mosaic: expected a centre (cx, cy) of ints in [0, {width}] × [0, {height}], "
                f"got {centres!r}."
            )
    elif not _compiling() and centres.is_cpu and centres.numel():
        low_x, high_x = int(centres[:, 0].min()), int(centres[:, 0].max())
        low_y, high_y = int(centres[:, 1].min()), int(centres[:, 1].max())
        if low_x < 0 or low_y < 0 or high_x > width or high_y > height:
            raise ValueError(
                f"mosaic: expected centres in [0, {width}] × [0, {height}], got x from {low_x} "
                f"to {high_x} and y from {low_y} to {high_y}."
            )
    partners = partners.to(images.device)
    if isinstance(centres, tuple):
        target = images if out is images else _prepare_out("mosaic", images, out)
        cx, cy = centres
        regions = [(cx, 0, width, cy), (0, cy, cx, height), (cx, cy, width, height)]
        tiles = [
            images[..., y1:y2, x1:x2].index_select(0, partners[q])
            for q, (x1, y1, x2, y2) in enumerate(regions)
        ]
        if target is not images:
            target.copy_(images)
        for (x1, y1, x2, y2), tile in zip(regions, tiles, strict=True):
            target[..., y1:y2, x1:x2] = tile
        return target
    centres = centres.to(images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    right = cols >= centres[:, 0].view(-1, 1, 1)
    bottom = rows >= centres[:, 1].view(-1, 1, 1)
    shape = (images.shape[0],) + (1,) * (images.ndim - 3) + (height, width)
    quadrant = (bottom.long() * 2 + right.long()).view(shape)
    sources = [images.index_select(0, partners[q]) for q in range(3)]
    result = torch.where(quadrant == 1, sources[0], images)
    result = torch.where(quadrant == 2, sources[1], result)
    if _tracked(images, out):
        return _deliver("mosaic", torch.where(quadrant == 3, sources[2], result), images, out)
    target = images if out is images else _prepare_out("mosaic", images, out)
    return torch.where(quadrant == 3, sources[2], result, out=target)

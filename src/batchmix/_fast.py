"""The compiled CPU loops of :mod:`batchmix._loops`, offered where they apply.

Each function returns ``True`` when it did the work and ``False`` when the caller must take its
PyTorch path, which then applies its own rules, broadcasting and errors:

* Numba missing or unable to load (e.g. no writable cache), or ``BATCHMIX_NUMBA=0``;
* a tensor off the CPU, under ``torch.compile``, requiring grad, or a negative/conjugate view;
* a layout other than contiguous (channels-last too, for MixUp), or an ``out`` that shares
  memory with the images without being them;
* indices, λ or boxes the loops do not take: out-of-range or non-int64 indices, λ tensors not
  of shape ``(B,)``, uint8 MixUp with λ outside [0, 1], boxes that are not integers inside the
  image, fill values the dtype cannot hold.

The ``*_gather`` functions write a mixed batch straight from a list of sample tensors into a
fresh batch (:class:`batchmix.MixCollate`'s path); they take only plain CPU samples of the
batch's sample shape and dtype, stored all contiguous or all channels-last (``stack_gather``:
channels-last only), none sharing memory with the batch.

Both paths give the same values; tests compare them.
"""

from __future__ import annotations

import math
import os
from types import ModuleType

import numpy as np
import torch
from torch import Tensor

ENABLED = os.environ.get("BATCHMIX_NUMBA", "1") != "0"

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_NUMPY_INT_OF_SIZE = {
    torch.uint8: np.uint8,
    torch.int16: np.int16,
    torch.int32: np.int32,
    torch.int64: np.int64,
}
# Dtypes whose tensors ``.numpy()`` takes (bfloat16 and the like go through torch's views).
_NUMPY_VIEWABLE = frozenset(
    {torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool}
    | {torch.float16, torch.float32, torch.float64}
)
# Image dtype -> dtype of MixUp's weights: uint8 pixels are mixed in float32.
_MIXUP_WEIGHTS = {torch.uint8: np.float32, torch.float32: np.float32, torch.float64: np.float64}
# Label dtype -> dtype of the weights added to the rows.
_ROW_WEIGHTS = {torch.float32: np.float32, torch.float64: np.float64}
# In-place MixUp with an index that is not a permutation works through a scratch of about this
# many elements (column blocks of every row), small enough to stay in cache.
SCRATCH_ELEMENTS = 1 << 19
_NOT_LOADED = ModuleType("not loaded")
_module: ModuleType | None = _NOT_LOADED


def _loops() -> ModuleType | None:
    global _module
    if _module is _NOT_LOADED:
        try:
            from batchmix import _loops as loops
        except Exception:  # numba missing, or unable to set up its cache (read-only install)
            _module = None
        else:
            _module = loops
    return _module


def _usable(images: Tensor, target: Tensor) -> ModuleType | None:
    """The loops, when both tensors are plain CPU tensors and ``target`` is ``images`` or
    shares no memory with it."""
    if not ENABLED or torch.compiler.is_compiling():
        return None
    for t in (images,) if target is images else (images, target):
        if not t.is_cpu or t.requires_grad or t.is_neg() or t.is_conj():
            return None
        try:
            t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # no memory of its own (e.g. under vmap)
            return None
    if target is not images and _share_memory(images, target):
        return None
    return _loops()


def _share_memory(a: Tensor, b: Tensor) -> bool:
    return bool(
        a.numel() and b.numel() and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    )


def _run(loops: ModuleType, name: str, *args: object) -> bool:
    """Runs a loop; ``False`` if Numba cannot compile it for these types (before any write)."""
    try:
        getattr(loops, name)(*args)
    except loops.NumbaError:
        return False
    return True


def _index_array(loops: ModuleType, index: Tensor, batch: int) -> np.ndarray | None:
    if index.shape != (batch,) or index.dtype != torch.long:
        return None
    array = _int64_array(index)
    return array if loops.index_inside(array, batch) else None


def _int64_array(t: Tensor) -> np.ndarray:
    """An integer tensor's values as a contiguous int64 CPU array: a view when it is one
    already (the transforms' indices and boxes are), else a converted copy."""
    if t.dtype == torch.long and t.is_cpu and t.is_contiguous():
        return t.numpy()
    return t.to(device="cpu", dtype=torch.long).contiguous().numpy()


def _box_array(
    loops: ModuleType,
    boxes: tuple[int, int, int, int] | Tensor,
    batch: int,
    height: int,
    width: int,
) -> np.ndarray | None:
    """The boxes as ``(B, 4)`` int64, or ``None`` unless they are integers inside the image."""
    if isinstance(boxes, Tensor):
        integer = not boxes.is_floating_point() and not boxes.is_complex()
        if boxes.shape != (batch, 4) or not integer or boxes.dtype == torch.bool:
            return None
        array = _int64_array(boxes)
        return array if loops.boxes_inside(array, height, width) else None
    if not (isinstance(boxes, tuple) and len(boxes) == 4 and all(type(v) is int for v in boxes)):
        return None
    x1, y1, x2, y2 = boxes
    if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
        return None
    array = np.empty((batch, 4), dtype=np.int64)
    array[:] = boxes
    return array


def _pixel_blocks(images: Tensor) -> np.ndarray | None:
    """A ``(B, C, H, W)`` view of a contiguous batch, in the integer type of its element size."""
    if not images.is_contiguous() or images.is_complex() or images.ndim < 3 or not images.numel():
        return None
    bits = _INT_OF_SIZE.get(images.element_size())
    if bits is None:
        return None
    batch, (height, width) = images.shape[0], images.shape[-2:]
    if images.dtype in _NUMPY_VIEWABLE:  # the same view through NumPy, whose ops cost less
        return images.numpy().view(_NUMPY_INT_OF_SIZE[bits]).reshape(batch, -1, height, width)
    as_int = images if images.dtype == bits else images.view(bits)
    return as_int.reshape(batch, -1, height, width).numpy()


def _rows(images: Tensor) -> np.ndarray | None:
    """A ``(B, S)`` view of a batch whose samples are dense blocks of S elements."""
    dense = images.is_contiguous() or (
        images.ndim in (4, 5)
        and images.is_contiguous(
            memory_format=torch.channels_last if images.ndim == 4 else torch.channels_last_3d
        )
    )
    if not dense:
        return None
    batch = images.shape[0]
    per = images[0].numel() if batch else 0
    if images.dtype in _NUMPY_VIEWABLE and images.is_contiguous():  # NumPy's ops cost less
        return images.numpy().reshape(batch, per)
    return images.as_strided((batch, per), (per, 1)).numpy()


def mixup(images: Tensor, target: Tensor, index: Tensor, lam: float | Tensor) -> bool:
    """MixUp of uint8, float32 or float64 images in one pass; ``target`` is ``images`` (in
    place) or a tensor like it."""
    loops = _usable(images, target)
    weight_type = _MIXUP_WEIGHTS.get(images.dtype)
    if loops is None or weight_type is None or images.stride() != target.stride():
        return False
    batch = images.shape[0]
    src = _rows(images)
    dst = src if target is images else _rows(target)
    partners = _index_array(loops, index, batch)
    if src is None or dst is None or partners is None or batch == 0:
        return False
    rounding = images.dtype == torch.uint8
    weights = _mixup_weights(lam, batch, weight_type, rounding)
    if weights is None:
        return False
    block = min(1 << 14, max(64, SCRATCH_ELEMENTS // batch))
    inplace = target is images
    return _run(loops, "mixup", src, dst, partners, *weights, inplace, block, rounding)


# Beta(α, α) draws are compiled for α in this range (NumPy's Jöhnk branch; below it NumPy
# switches to another method for tiny α), and only with NumPy 2.1 or later: earlier releases
# handle an underflowing power differently (``log(exp(a) + exp(b))`` when both underflow),
# which gives other values for α below about 0.05.
_BETA_COMPILED = (1e-100, 1.0)
_NUMPY_BETA_AS_COMPILED = np.lib.NumpyVersion(np.__version__) >= "2.1.0"


def _beta_loops(alpha: float, seed: int) -> ModuleType | None:
    low, high = _BETA_COMPILED
    if not (ENABLED and _NUMPY_BETA_AS_COMPILED and low <= alpha <= high and 0 <= seed < 1 << 63):
        return None
    return _loops()


def beta_draws(alpha: float, n: int, seed: int) -> np.ndarray | None:
    """``np.random.default_rng(seed).beta(alpha, alpha, size=n)`` computed by a compiled loop,
    the same values bit for bit; ``None`` where the loop does not apply (α outside
    ``_BETA_COMPILED``, a seed outside ``[0, 2**63)``, no loops), for the caller to ask NumPy."""
    loops = _beta_loops(alpha, seed)
    if loops is None:
        return None
    values = np.empty(n, dtype=np.float64)
    loops.beta_draws(seed, float(alpha), values)
    return values


def beta_draw(alpha: float, seed: int) -> float | None:
    """``beta_draws(alpha, 1, seed)[0]`` as a Python float (``None`` likewise)."""
    loops = _beta_loops(alpha, seed)
    return None if loops is None else float(loops.beta_draw(seed, float(alpha)))


def square_boxes(
    cx: np.ndarray, cy: np.ndarray, size: int, height: int, width: int
) -> np.ndarray | None:
    """CutOut's ``(n, 4)`` int64 boxes: squares of side ``size`` from ``c − size // 2``, clipped
    to the image, for int64 centres ``cx``, ``cy``; ``None`` without the loops."""
    loops = _loops() if ENABLED else None
    if loops is None or cx.dtype != np.int64 or cy.dtype != np.int64 or type(size) is not int:
        return None  # (other sizes: NumPy's path decides, and raises on floats)
    boxes = np.empty((cx.shape[0], 4), dtype=np.int64)
    loops.square_boxes(cx, cy, size, height, width, boxes)
    return boxes


def indices_inside(labels: Tensor, high: int) -> bool:
    """Whether the int64 CPU ``labels`` all lie in ``[0, high)``; ``False`` also when the loops
    cannot tell (other dtypes or devices), for the caller to check itself."""
    if labels.dtype != torch.long or labels.ndim != 1 or _usable(labels, labels) is None:
        return False
    loops = _loops()
    return loops is not None and bool(loops.index_inside(labels.contiguous().numpy(), high))


def index_rows(
    labels: Tensor, num_classes: int, index: Tensor, lam: float | Tensor, dtype: torch.dtype
) -> Tensor | None:
    """:func:`batchmix.functional.mix_index_labels` for int64 CPU labels: ``(B, K)`` rows
    written in one pass; ``None`` for the PyTorch path (which also raises on bad labels)."""
    weight_type = _ROW_WEIGHTS.get(dtype)
    if weight_type is None or labels.ndim != 1 or labels.dtype != torch.long:
        return None
    if type(num_classes) is not int or num_classes < 1 or labels.shape[0] == 0:
        return None  # the PyTorch path's rows, strides and errors
    loops = _usable(labels, labels)
    batch = labels.shape[0]
    if loops is None or index.shape != (batch,) or index.dtype != torch.long or not index.is_cpu:
        return None
    weights = _mixup_weights(lam, batch, weight_type, False)
    if weights is None:
        return None
    # Zeroed by the loop, row by row; NumPy's allocation costs less than torch's.
    try:
        rows = np.empty((batch, num_classes), dtype=weight_type)
    except (MemoryError, ValueError):  # too large: the PyTorch path raises torch's error
        return None
    own, partners = labels.contiguous().numpy(), index.contiguous().numpy()
    try:
        written = loops.index_rows(own, partners, *weights, rows)
    except loops.NumbaError:
        return None
    return torch.from_numpy(rows) if written else None


def _mixup_weights(
    lam: float | Tensor, batch: int, weight_type: type, rounding: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """λ and 1 − λ per sample, computed in float64 then cast: the PyTorch path's weights."""
    if isinstance(lam, Tensor):
        if lam.shape != (batch,) or lam.requires_grad or lam.is_complex():
            return None
        lam64 = lam.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:  # the same casts of one number, without the float64 arrays
        value = float(lam)
        if rounding and not 0.0 <= value <= 1.0:
            return None
        return np.full(batch, weight_type(value)), np.full(batch, weight_type(1.0 - value))
    if rounding and not bool(((lam64 >= 0.0) & (lam64 <= 1.0)).all()):
        return None  # levels out of range: left to the PyTorch path's casts
    return lam64.astype(weight_type), (1.0 - lam64).astype(weight_type)


def copy_boxes(
    images: Tensor, target: Tensor, index: Tensor, boxes: tuple[int, int, int, int] | Tensor
) -> bool:
    """CutMix's box copy; ``target`` is ``images``, or a tensor like it that receives
    ``images`` with the boxes pasted, in one pass."""
    loops = _usable(images, target)
    if loops is None or images.dtype != target.dtype or images.shape != target.shape:
        return False
    if not target.is_contiguous():
        return False
    src = _pixel_blocks(images)
    dst = src if target is images else _pixel_blocks(target)
    if src is None or dst is None:
        return False
    batch, (height, width) = images.shape[0], images.shape[-2:]
    partners = _index_array(loops, index, batch)
    box_array = _box_array(loops, boxes, batch, height, width)
    if partners is None or box_array is None:
        return False
    return _run(loops, "copy_boxes", src, dst, partners, box_array, target is images)


# (type, float64 bits or int) of a fill value and dtype -> its bits in the integer type of the
# dtype's size, or None.
_FILL_BITS: dict[tuple[type, int, torch.dtype], int | None] = {}
_LAST_FILL: tuple[object, torch.dtype | None, int | None] = (object(), None, None)


def _fill_bits(value: float, dtype: torch.dtype) -> int | None:
    """``value`` cast to ``dtype`` as the PyTorch path casts it, as the bits the loops write;
    ``None`` when the PyTorch path must decide (out of range, or overflowing to infinity).

    Python floats and ints are cached by their exact bits (so -0.0, 0.0 and NaNs of either
    sign stay apart); other values (tensors, NumPy scalars) are converted at every call.
    """
    last = _LAST_FILL
    if value is last[0] and dtype is last[1]:  # (the same float object: a transform's value)
        return last[2]
    kind = type(value)
    if kind is float:
        key: tuple[type, int, torch.dtype] | None = (kind, _float_bits(value), dtype)
    elif kind is int:
        key = (kind, int(value), dtype)
    else:
        key = None
    if key is not None and key in _FILL_BITS:
        bits = _FILL_BITS[key]
        _remember_fill(value, dtype, bits)
        return bits
    try:
        fill = torch.full((), value, dtype=dtype)
    except RuntimeError:  # a value out of the dtype's range: the PyTorch path raises
        bits = None
    else:
        overflow = fill.is_floating_point() and math.isfinite(value) and not bool(fill.isfinite())
        bits = None if overflow else int(fill.view(_INT_OF_SIZE[fill.element_size()]).item())
    if key is not None and len(_FILL_BITS) < 256:
        _FILL_BITS[key] = bits
        _remember_fill(value, dtype, bits)
    return bits


def _remember_fill(value: float, dtype: torch.dtype, bits: int | None) -> None:
    """Keeps the last Python float or int looked up, by identity (they are immutable): a
    transform passes the same object at every call, and skips the key's computation."""
    global _LAST_FILL
    _LAST_FILL = (value, dtype, bits)


def _float_bits(value: float) -> int:
    return int(np.float64(value).view(np.int64))


def fill_boxes(
    target: Tensor,
    boxes: tuple[int, int, int, int] | Tensor,
    value: float,
    source: Tensor | None = None,
) -> bool:
    """CutOut's fill of every sample's box with ``value``; with a ``source`` other than
    ``target``, ``target`` receives ``source`` with the boxes filled, in one pass."""
    source = target if source is None else source
    loops = _usable(source, target)
    if loops is None or source.dtype != target.dtype or source.shape != target.shape:
        return False
    src = _pixel_blocks(source)
    dst = src if target is source else _pixel_blocks(target)
    if src is None or dst is None:
        return False
    batch, (height, width) = target.shape[0], target.shape[-2:]
    box_array = _box_array(loops, boxes, batch, height, width)
    if box_array is None:
        return False
    bits = _fill_bits(value, target.dtype)
    if bits is None:
        return False
    if source is target:
        return _run(loops, "fill_boxes", dst, box_array, bits)
    return _run(loops, "copy_fill_boxes", src, dst, box_array, bits)


def _addresses(samples: list[Tensor], target: Tensor) -> tuple[np.ndarray, bool] | None:
    """The samples' data addresses and whether they are stored channels-last, when each is a
    plain CPU tensor shaped and typed like ``target[0]``, all stored alike: contiguous, or
    ``(C, H, W)`` views of ``(H, W, C)`` images (what ``pil_to_tensor`` returns)."""
    if target.ndim != 4 or len(samples) != target.shape[0] or not target.numel():
        return None
    if not target.is_contiguous():
        return None
    shape, dtype = target.shape[1:], target.dtype
    channels, height, width = shape
    channels_last = not samples[0].is_contiguous()
    strides = (1, width * channels, channels) if channels_last else (height * width, width, 1)
    for sample in samples:
        if (
            type(sample) is not Tensor
            or sample.shape != shape
            or sample.dtype != dtype
            or not sample.is_cpu
            or sample.requires_grad
            or sample.is_neg()
            or sample.is_conj()
            or (sample.stride() != strides and (channels_last or not sample.is_contiguous()))
        ):
            return None
    addresses = np.array([sample.data_ptr() for sample in samples], dtype=np.int64)
    if not addresses.all():  # no memory behind a sample (e.g. a ZeroTensor)
        return None
    own = target.untyped_storage().data_ptr()
    if any(sample.untyped_storage().data_ptr() == own for sample in samples):
        return None  # the loops read the samples while writing the target
    return addresses, channels_last


def mixup_gather(samples: list[Tensor], target: Tensor, index: Tensor, lam: float | Tensor) -> bool:
    """``target[i] = λ_i · samples[i] + (1 − λ_i) · samples[index[i]]``, as :func:`mixup`,
    ``target`` being a fresh contiguous ``(B, C, H, W)`` batch."""
    loops = _usable(target, target)
    weight_type = _MIXUP_WEIGHTS.get(target.dtype)
    if loops is None or weight_type is None:
        return False
    found = _addresses(samples, target)
    batch = target.shape[0]
    partners = _index_array(loops, index, batch)
    if found is None or partners is None:
        return False
    rounding = target.dtype == torch.uint8
    weights = _mixup_weights(lam, batch, weight_type, rounding)
    if weights is None:
        return False
    addresses, channels_last = found
    dst = target.numpy()
    return _run(loops, "mixup_gather", addresses, dst, partners, *weights, rounding, channels_last)


def cutmix_gather(
    samples: list[Tensor],
    target: Tensor,
    index: Tensor,
    boxes: tuple[int, int, int, int] | Tensor,
) -> bool:
    """``target[i]`` = ``samples[i]`` with its box from ``samples[index[i]]``: the stack of the
    samples, then :func:`copy_boxes`, in one pass; ``target`` as in :func:`mixup_gather`."""
    loops = _usable(target, target)
    if loops is None:
        return False
    found, dst = _addresses(samples, target), _pixel_blocks(target)
    batch, (height, width) = target.shape[0], target.shape[-2:]
    partners = _index_array(loops, index, batch)
    box_array = _box_array(loops, boxes, batch, height, width)
    if found is None or dst is None or partners is None or box_array is None:
        return False
    addresses, channels_last = found
    return _run(loops, "cutmix_gather", addresses, dst, partners, box_array, channels_last)


def stack_gather(samples: list[Tensor], target: Tensor) -> bool:
    """``torch.stack(samples, out=target)`` for channels-last samples, which PyTorch copies
    several times slower; ``target`` as in :func:`mixup_gather`."""
    if not samples or samples[0].is_contiguous():
        return False  # torch.stack's copy is as fast for contiguous samples
    return cutmix_gather(samples, target, torch.arange(len(samples)), (0, 0, 0, 0))


_warm = False


def warm_up() -> None:
    """Loads (or compiles) the loops for uint8 and float32 batches in this process.

    DataLoader workers forked afterwards inherit them; without this, every worker loads them
    at its first batch (about 0.6–0.9 s each, at every epoch unless ``persistent_workers``).
    """
    global _warm
    if _warm or not ENABLED or _loops() is None:
        return
    _warm = True
    index = torch.tensor([1, 0])
    index_rows(index, 2, index, 0.5, torch.float32)
    for dtype in (torch.uint8, torch.float32):
        images = torch.zeros(2, 1, 2, 2, dtype=dtype)
        mixup(images, torch.empty_like(images), index, 0.5)
        copy_boxes(images, images, index, (0, 0, 1, 1))
        copy_boxes(images, images, index, torch.zeros(2, 4, dtype=torch.long))
        fill_boxes(images, (0, 0, 1, 1), 0.0)
        fill_boxes(torch.empty_like(images), (0, 0, 1, 1), 0.0, source=images)
        for samples in (
            list(images),
            [s.permute(2, 0, 1) for s in torch.zeros(2, 2, 2, 3, dtype=dtype)],
        ):
            batch = torch.empty((2, *samples[0].shape), dtype=dtype)
            mixup_gather(samples, batch, index, 0.5)
            cutmix_gather(samples, batch, index, (0, 0, 1, 1))

"""Speed of batchmix against torchvision v2, timm and the cost of the bytes it must move (issue 4).

Every candidate runs in the same process on the same tensors, interleaved: each round times every
candidate of a group once (in a rotated order), and a row reports the median over rounds. Ratios
are medians of the per-round ratios, so a change of load hits both sides of a ratio alike. Only
ratios mean anything on a shared machine; absolute times swing with load.

What is timed, per group (device, dtype, batch B, image side S, operation):

* ``batchmix``: the transforms as users call them. Out of place ``CutMix(num_classes=1000)(x, y)``;
  in place on a stacked batch ``t.mix_batch(work, y, inplace=True)`` (what
  :class:`batchmix.MixCollate` does with a custom inner collate; with the default one it writes
  CutMix and MixUp batches straight from the samples, timed by the DataLoader part below).
  ``mode="batch"`` and ``mode="sample"``; CutOut has one box per sample (mode ``sample``).
* ``torchvision``: ``v2.CutMix`` / ``v2.MixUp(num_classes=1000)(x, y)`` (out of place, one λ per
  batch; ``v2.MixUp`` rejects uint8). torchvision has no CutOut: its nearest is
  ``v2.RandomErasing(p=1, ratio=(1, 1), value=0)`` on the batch (one square for the whole batch,
  of the floor's area), timed out of place and with ``inplace=True``. Each batchmix row is
  compared with torchvision's row of the same path where there is one (CutOut in place), else
  with its out-of-place row (CutMix and MixUp have no in-place path in torchvision).
* ``timm``: ``timm.data.Mixup`` with only MixUp or only CutMix enabled, ``mode="batch"`` and
  ``"elem"`` (its per-sample mode, a Python loop). It mixes its input in place, so its rows have
  path ``inplace``. It is tried on uint8 too; what it refuses is recorded as unsupported.
* ``floor``: a preallocated copy of exactly the bytes the operation must touch.

  - CutMix in place: for every sample, copy its partner's pixels in its box to its own box,
    within one preallocated batch (the in-place call works within its batch). The k-th timed
    call uses the boxes and partners that batchmix draws after seed k (every batchmix and
    floor measurement makes one call with each of the 16 pinned seeds), so the floor moves the
    same bytes at the same places.
  - CutOut in place: fill the boxes batchmix's CutOut draws (side S/2 at 224 px, 16 px at
    32 px, clipped to the image), likewise per seed.
  - Both box floors are timed two ways, with a compiled loop that copies or fills each box row
    element by element (as batchmix's own loops do) and with torch's strided ``copy_``/``fill_``
    (one op per sample, or one for the batch when all boxes agree, then from another batch,
    since torch refuses copies between overlapping views); each row is compared with the
    faster.
  - For reference only, the box floors are also timed on one centred box of the draws' mean
    area, copied from another batch or filled (``centred`` variants,
    ``ratio_to_centred_floor``): the
    floor of earlier versions. It rewrites the same bytes at every call, which stay in cache;
    the draws' boxes move from call to call. Measured apart (not by this script), the same
    fill loop over 256×3×224² float32 took 2.1 ms per call repeating one seed's boxes and
    6.0 ms going through the 16 seeds' boxes, with equal areas.
  - MixUp: two reads and one write of the batch, ``torch.add(a, b, out=a)`` in place (as the
    in-place call writes over what it reads) and ``torch.add(a, b, out=c)`` out of place.
  - CutMix and CutOut out of place: ``c.copy_(a)``, one read and one write of the batch, which
    every out-of-place call must do at least (the allocation of the output is not part of it).

Threads: one intra-op thread by default (``--threads 0`` keeps torch's default of one per core).
One thread is what DataLoader workers use, so it is the collate path as it runs. And on a 2-core
machine whose other core is busy with other work, two threads make every parallel op wait for
the busy core's next time slice (several ms per op, whatever its size): the timings then count
ops, not bytes.

Randomness is pinned: the k-th timed call of every round is preceded by ``torch.manual_seed(k)``
and ``np.random.seed(k)`` (outside the timed region), so each candidate sees the same λ and boxes
in every round, and batchmix's in-place and out-of-place rows see the same ones.

Caches: every measurement is preceded by the same calls, untimed, so each candidate starts from
the caches its own calls leave (for in-place rows, a batch that has just been written, as after
collation), not from whatever the candidate before it left behind.

Memory: the peak extra resident memory of one out-of-place call, measured in a fresh
subprocess started with ``MALLOC_MMAP_THRESHOLD_=65536`` so that every tensor of 64 KiB or more
is its own mapping, returned to the system when freed: the peak resident set (``VmHWM``, reset
through ``/proc/self/clear_refs``) then follows the tensors alive at each moment. The number
reported, ``peak_extra_over_batch``, is (peak − resident before the call − the bytes of the
returned (B, 1000) float32 label rows) / bytes of the image batch. The kernel's RSS counters are
approximate by about half a MiB, so only batches of 8 MiB or more are measured on the CPU (the
224 px ones). On CUDA, the caching allocator's peak is used instead. The peak counts pages
written, so the allocations are counted apart (``full_size_allocations``, every group): torch
ops whose output is a new image-sized storage, seen through a dispatch mode.

End to end: a DataLoader (2 workers, batch 64) over a generated ImageFolder of JPEGs decoded to
uint8, with ``default_collate`` against ``MixCollate(CutMix)`` and ``MixCollate(MixUp)``; epochs
are interleaved and the loss of throughput is reported in percent. Since two workers on two
shared cores vary by up to 20% between rounds, the CPU time of each collate is also measured
inside a DataLoader worker (``time.thread_time``), on channels-last and on contiguous samples,
with ``MixCollate`` with mixing switched off beside them, and the loss that CPU time implies
for CPU-bound workers is reported (``modelled_loss_percent``).

Run ``python benchmarks/bench_mix.py --out out/bench.json`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import batchmix
from batchmix import _memory

NUM_CLASSES = 1000
# Largest number of timed calls per measurement; also the number of pinned seeds (0..15).
MAX_CALLS = 16
OPS = ("cutmix", "mixup", "cutout")
DTYPES = {"float32": torch.float32, "uint8": torch.uint8}
PAGE_KIB = 1024
# Tensors of this many bytes or more get their own mapping in the memory probe.
MMAP_THRESHOLD = 65536
# Batches smaller than this are not measured for memory on the CPU (RSS counter precision).
MEMORY_MIN_BYTES = 8 << 20


@dataclass(frozen=True)
class Config:
    """What to run; the defaults are the full benchmark (about 5 minutes on 2 busy cores)."""

    shapes: tuple[tuple[int, int], ...] = ((64, 224), (256, 224), (256, 32))
    dtypes: tuple[str, ...] = ("float32", "uint8")
    ops: tuple[str, ...] = OPS
    devices: tuple[str, ...] = ("cpu",)
    # Intra-op threads; 0 keeps torch's default (one per core). See the module docstring.
    threads: int = 1
    rounds: int = 5
    # Seconds one measurement (one candidate, one round) aims to last; at least 2 calls.
    budget_s: float = 0.08
    memory: bool = True
    loader_images: int = 1024
    loader_size: int = 224
    loader_batch: int = 64
    loader_workers: int = 2
    loader_rounds: int = 11


QUICK = Config(
    shapes=((64, 224), (256, 32)),
    rounds=3,
    budget_s=0.03,
    loader_images=384,
    loader_rounds=3,
)


@dataclass
class Candidate:
    """One thing to time: ``call()`` runs it once, or ``call[k]()`` after seed ``k`` when it is
    a list (floors that move the pinned draws' own boxes); ``skip`` says why it cannot run."""

    op: str
    library: str
    path: str
    mode: str
    call: Callable[[], Any] | list[Callable[[], Any]] | None
    skip: str | None = None
    times: list[float] = field(default_factory=list)
    calls: int = 0
    #: Floors: how the bytes are moved ("torch" strided ops, a compiled "loop" of rows, and
    #: their "centred ..." references).
    variant: str = ""


# --------------------------------------------------------------------------------------------
# Inputs, floors and candidates


def _cutout_size(side: int) -> int:
    """CutOut's square: 16 px on 32 px images (the paper's CIFAR setting), half the side above."""
    return 16 if side <= 32 else side // 2


def _centred_box(area_fraction: float, height: int, width: int) -> tuple[int, int, int, int]:
    """A box covering ``area_fraction`` of the image, as square as the image allows."""
    rows = max(0, min(height, round(math.sqrt(area_fraction) * height)))
    cols = max(0, min(width, round(area_fraction * height * width / rows))) if rows else 0
    y1, x1 = (height - rows) // 2, (width - cols) // 2
    return x1, y1, x1 + cols, y1 + rows


def _box_area(boxes: Any, height: int, width: int) -> float:
    """Mean area fraction of a ``(x1, y1, x2, y2)`` tuple or of ``(B, 4)`` boxes."""
    b = torch.as_tensor(boxes, dtype=torch.float64).view(-1, 4)
    return float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean()) / (height * width)


@dataclass(frozen=True)
class Draw:
    """The boxes ``(B, 4)`` and partners ``(B,)`` (int64) of one pinned call."""

    boxes: np.ndarray
    index: np.ndarray


def pinned_draws(transform: Any, batch: int, height: int, width: int) -> list[Draw]:
    """``transform``'s boxes and partners for the pinned seeds ``0..MAX_CALLS-1``: what its
    k-th timed call draws (no box and itself as partner when it draws nothing)."""
    draws = []
    for seed in range(MAX_CALLS):
        _seed(seed)
        params = transform.make_params(batch, height, width, None)
        if params is None:
            boxes, index = torch.zeros(batch, 4, dtype=torch.int64), torch.arange(batch)
        else:
            boxes = torch.as_tensor(params.boxes, dtype=torch.int64).view(-1, 4).expand(batch, 4)
            index = params.index
        draws.append(Draw(boxes.numpy().copy(), index.to(torch.int64).numpy().copy()))
    return draws


def mean_box_area(transform: Any, batch: int, height: int, width: int) -> float:
    """Mean area fraction of ``transform``'s boxes over the pinned seeds ``0..MAX_CALLS-1``."""
    draws = pinned_draws(transform, batch, height, width)
    return statistics.fmean(_box_area(d.boxes, height, width) for d in draws)


@functools.cache
def _row_loops() -> dict[str, Callable[..., None]]:
    """Compiled loops that copy or fill boxes row by row, element by element: the floor's bytes
    moved without torch's per-call cost for strided views, written as batchmix's own loops
    write a row (slice-assignment loops took 2.5–6 times as long on these boxes, measured
    apart). One box for
    every sample (``copy_box``, ``fill_box``), or each sample's own box, copied from its
    partner's pixels at the same place (``copy_boxes``, ``fill_boxes``); ``src`` may be
    ``dst``. Compiled once per process (Numba is a batchmix dependency)."""
    from numba import njit

    @njit(cache=False, nogil=True, inline="always")
    def copy_row(src, dst):  # type: ignore[no-untyped-def]
        for k in range(dst.shape[0]):
            dst[k] = src[k]

    @njit(cache=False, nogil=True, inline="always")
    def fill_row(dst, value):  # type: ignore[no-untyped-def]
        for k in range(dst.shape[0]):
            dst[k] = value

    @njit(cache=False, nogil=True)
    def copy_box(src, dst, x1, y1, x2, y2):  # type: ignore[no-untyped-def]
        for i in range(src.shape[0]):
            for c in range(src.shape[1]):
                for y in range(y1, y2):
                    copy_row(src[i, c, y, x1:x2], dst[i, c, y, x1:x2])

    @njit(cache=False, nogil=True)
    def fill_box(dst, x1, y1, x2, y2, value):  # type: ignore[no-untyped-def]
        for i in range(dst.shape[0]):
            for c in range(dst.shape[1]):
                for y in range(y1, y2):
                    fill_row(dst[i, c, y, x1:x2], value)

    @njit(cache=False, nogil=True)
    def copy_boxes(src, dst, index, boxes):  # type: ignore[no-untyped-def]
        for i in range(dst.shape[0]):
            j = index[i]
            x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            for c in range(dst.shape[1]):
                for y in range(y1, y2):
                    copy_row(src[j, c, y, x1:x2], dst[i, c, y, x1:x2])

    @njit(cache=False, nogil=True)
    def fill_boxes(dst, boxes, value):  # type: ignore[no-untyped-def]
        for i in range(dst.shape[0]):
            x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            for c in range(dst.shape[1]):
                for y in range(y1, y2):
                    fill_row(dst[i, c, y, x1:x2], value)

    return {
        "copy_box": copy_box,
        "fill_box": fill_box,
        "copy_boxes": copy_boxes,
        "fill_boxes": fill_boxes,
    }


def _each_view(views: list[tuple[Tensor, Tensor]], fill: bool) -> Callable[[], None]:
    """One strided ``fill_(0)`` of each destination view, or ``copy_`` of its source into it."""

    def call() -> None:
        for dst, src in views:
            if fill:
                dst.fill_(0)
            else:
                dst.copy_(src)

    return call


def _seed(k: int) -> None:
    torch.manual_seed(k)
    np.random.seed(k)


def _pixel_view(images: Tensor) -> np.ndarray:
    """A ``(B, C, H, W)`` array over the batch's memory, in the integer type of its element
    size (what the row loops copy)."""
    kind = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[images.element_size()]
    return images.view(kind).numpy()


def _discard(fn: Callable[[], Any]) -> Callable[[], None]:
    """Calls ``fn`` and drops what it returns, so freeing the output is part of the call."""

    def call() -> None:
        fn()

    return call


def build_inputs(
    device: str, dtype: torch.dtype, batch: int, side: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The batch ``x``, labels ``y``, a working copy for in-place candidates and a floor buffer."""
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 3, side, side)
    if dtype.is_floating_point:
        x = torch.rand(shape, generator=generator, dtype=dtype)
    else:
        x = torch.randint(0, 256, shape, generator=generator, dtype=dtype)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    x, y = x.to(device), y.to(device)
    return x, y, x.clone(), torch.empty_like(x)


def build_candidates(
    op: str, x: Tensor, y: Tensor, work: Tensor, buf: Tensor
) -> tuple[list[Candidate], dict[str, Any]]:
    """The candidates of one group, and facts about it (the floor's box and area)."""
    from timm.data import Mixup
    from torchvision.transforms import v2

    batch, side = x.shape[0], x.shape[-1]
    cands: list[Candidate] = []
    info: dict[str, Any] = {}

    def add(
        library: str,
        path: str,
        mode: str,
        fn: Callable[[], Any] | list[Callable[[], Any]] | None,
        **kw: Any,
    ) -> None:
        call = (
            None
            if fn is None
            else [_discard(f) for f in fn]
            if isinstance(fn, list)
            else _discard(fn)
        )
        cands.append(Candidate(op, library, path, mode, call, **kw))

    loops = _row_loops() if x.device.type == "cpu" else None

    def box_floors(path: str, mode: str, transform: Any, fill: bool) -> None:
        """The in-place floors of one mode. Each timed call k moves the bytes of the boxes
        ``transform`` draws after seed k, at their places: every sample's box filled (CutOut)
        or copied from its partner's box (CutMix) within ``buf``, as the in-place call works
        within its one batch. Timed two ways, rows compared with the faster: a compiled loop
        (``loop``), and torch's strided ops (``torch``: one per sample, or, when the batch
        shares one box, one op for the batch, from ``x`` into ``buf``, since torch refuses a
        copy between overlapping views of one tensor). A centred box of the draws' mean area,
        the same at every call, copied from ``x`` into ``buf`` (variants ``centred torch`` and
        ``centred loop``), is timed beside them for reference only: it rewrites the same bytes
        at every call, which stay in cache, while the draws' boxes move from call to call."""
        draws = pinned_draws(transform, batch, side, side)
        area = statistics.fmean(_box_area(d.boxes, side, side) for d in draws)
        torch_calls, loop_calls = [], []
        src_pixels, dst_pixels = _pixel_view(x), _pixel_view(buf)
        for draw in draws:
            x1, y1, x2, y2 = (int(v) for v in draw.boxes[0])
            if (draw.boxes == draw.boxes[0]).all():
                # One strided op for the batch; reading each sample's own box instead of its
                # partner's reads the same bytes when the partners are a permutation.
                same = bool((np.sort(draw.index) == np.arange(batch)).all())
                src = x[..., y1:y2, x1:x2] if same else x[torch.from_numpy(draw.index)]
                src = src if same else src[..., y1:y2, x1:x2].clone()
                dst = buf[..., y1:y2, x1:x2]
                torch_calls.append(
                    (lambda d=dst: d.fill_(0)) if fill else (lambda d=dst, s=src: d.copy_(s))
                )
            else:
                views = [
                    (buf[i, :, b[1] : b[3], b[0] : b[2]], buf[j, :, b[1] : b[3], b[0] : b[2]])
                    for i, (j, b) in enumerate(
                        zip(draw.index.tolist(), draw.boxes.tolist(), strict=True)
                    )
                ]
                torch_calls.append(_each_view(views, fill))
            if loops is not None:
                if fill:
                    loop_calls.append(lambda d=draw: loops["fill_boxes"](dst_pixels, d.boxes, 0))
                else:
                    loop_calls.append(
                        lambda d=draw: loops["copy_boxes"](dst_pixels, dst_pixels, d.index, d.boxes)
                    )
        add("floor", path, mode, torch_calls, variant="torch")
        if loop_calls:
            add("floor", path, mode, loop_calls, variant="loop")
        x1, y1, x2, y2 = _centred_box(area, side, side)
        src, dst = x[..., y1:y2, x1:x2], buf[..., y1:y2, x1:x2]
        if fill:
            add("floor", path, mode, lambda: dst.fill_(0), variant="centred torch")
        else:
            add("floor", path, mode, lambda: dst.copy_(src), variant="centred torch")
        if loops is not None:
            if fill:
                call = lambda: loops["fill_box"](dst_pixels, x1, y1, x2, y2, 0)  # noqa: E731
            else:
                call = lambda: loops["copy_box"](src_pixels, dst_pixels, x1, y1, x2, y2)  # noqa: E731
            add("floor", path, mode, call, variant="centred loop")
        info[f"box_area_fraction_{mode}"] = area
        info[f"floor_area_fraction_{mode}"] = area
        info[f"centred_area_fraction_{mode}"] = _box_area((x1, y1, x2, y2), side, side)

    if op in ("cutmix", "mixup"):
        cls = batchmix.CutMix if op == "cutmix" else batchmix.MixUp
        for mode in ("batch", "sample"):
            t = cls(num_classes=NUM_CLASSES, mode=mode)
            add("batchmix", "out-of-place", mode, lambda t=t: t(x, y))
            add("batchmix", "inplace", mode, lambda t=t: t.mix_batch(work, y, inplace=True))
        tv_cls = v2.CutMix if op == "cutmix" else v2.MixUp
        tv = tv_cls(num_classes=NUM_CLASSES)
        add("torchvision", "out-of-place", "batch", lambda: tv(x, y))
        mixup_alpha, cutmix_alpha = (0.0, 1.0) if op == "cutmix" else (1.0, 0.0)
        for mode in ("batch", "elem"):
            if batch % 2 == 0:  # timm asserts an even batch; unsupported dtypes fail warm-up
                tm = Mixup(
                    mixup_alpha=mixup_alpha,
                    cutmix_alpha=cutmix_alpha,
                    num_classes=NUM_CLASSES,
                    label_smoothing=0.0,
                    mode=mode,
                )
                add("timm", "inplace", mode, lambda tm=tm: tm(work, y))
            else:
                add("timm", "inplace", mode, None, skip="unsupported: timm needs an even batch")
        if op == "cutmix":
            for mode in ("batch", "sample"):
                box_floors("inplace", mode, cls(num_classes=NUM_CLASSES, mode=mode), fill=False)
            add("floor", "out-of-place", "-", lambda: buf.copy_(x), variant="torch")
            info.update(floor_inplace="box copy", floor_out_of_place="batch copy")
        else:
            # In place, the batch is read twice and written over one of the two; out of place,
            # the output is a third batch.
            add("floor", "inplace", "-", lambda: torch.add(buf, x, out=buf), variant="torch")
            add("floor", "out-of-place", "-", lambda: torch.add(x, work, out=buf), variant="torch")
            info.update(floor_inplace="add (2 reads, 1 write)")
            info.update(floor_out_of_place="add (2 reads, 1 write)")
    elif op == "cutout":
        t = batchmix.CutOut(size=_cutout_size(side))
        add("batchmix", "out-of-place", "sample", lambda: t(x, y))
        add("batchmix", "inplace", "sample", lambda: t.mix_batch(work, y, inplace=True))
        box_floors("inplace", "sample", t, fill=True)
        real = info["box_area_fraction_sample"]
        for inplace, path in ((False, "out-of-place"), (True, "inplace")):
            erase = v2.RandomErasing(p=1.0, scale=(real, real), ratio=(1.0, 1.0), value=0)
            erase.inplace = inplace
            target = x if not inplace else work
            add("torchvision", path, "batch", lambda e=erase, target=target: e(target))
        add("timm", "inplace", "sample", None, skip="n/a: timm's Mixup has no CutOut")
        add("floor", "out-of-place", "-", lambda: buf.copy_(x), variant="torch")
        info.update(cutout_size=t.size)
        info.update(floor_inplace="box fill", floor_out_of_place="batch copy")
    else:
        raise ValueError(f"bench_mix: expected op to be one of {', '.join(OPS)}, got {op!r}.")
    return cands, info


# --------------------------------------------------------------------------------------------
# Timing


def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def time_calls(
    call: Callable[[], Any] | list[Callable[[], Any]], calls: int, sync: Callable[[], None]
) -> float:
    """Mean seconds per call over ``calls`` calls, the k-th one after seeding with ``k`` (and,
    for a list, the k-th one ``call[k]``)."""
    total = 0.0
    for k in range(calls):
        _seed(k)
        run = call[k % len(call)] if isinstance(call, list) else call
        sync()
        start = time.perf_counter()
        run()
        sync()
        total += time.perf_counter() - start
    return total / calls


def warm_up(cands: Sequence[Candidate], budget_s: float, sync: Callable[[], None]) -> None:
    """Runs every candidate twice, marks the ones that fail, and sets their calls per round."""
    for cand in cands:
        if cand.call is None:
            continue
        try:
            time_calls(cand.call, 1, sync)
            once = time_calls(cand.call, 1, sync)
        except (RuntimeError, ValueError, TypeError, AssertionError) as error:
            cand.call = None
            cand.skip = f"unsupported: {type(error).__name__}: {str(error).splitlines()[0]}"
            continue
        cand.calls = int(min(MAX_CALLS, max(2, math.ceil(budget_s / max(once, 1e-9)))))
        if cand.library in ("batchmix", "floor"):
            # Every pinned seed, so that the rows see the λ and boxes the floors' areas are
            # the mean of, whatever a call costs.
            cand.calls = MAX_CALLS


def run_rounds(cands: Sequence[Candidate], rounds: int, sync: Callable[[], None]) -> None:
    """Interleaved rounds: every candidate once per round, starting one further each round.

    Each measurement is preceded by the same calls untimed, so that every candidate starts
    from the caches its own calls leave, not from what the candidate before it left: without
    this, an in-place row after an out-of-place one ran its first calls 2.3–2.7 times slower
    than its last ones (the batch evicted), while a floor after the other variant of the same
    floor (the same boxes of the same buffer) started warm."""
    live = [c for c in cands if c.call is not None]
    for r in range(rounds):
        for i in range(len(live)):
            cand = live[(i + r) % len(live)]
            assert cand.call is not None
            time_calls(cand.call, cand.calls, sync)
            cand.times.append(time_calls(cand.call, cand.calls, sync))


def _median_ratio(num: Sequence[float], den: Sequence[float]) -> float | None:
    pairs = [a / b for a, b in zip(num, den, strict=True) if b > 0]
    return statistics.median(pairs) if pairs else None


# --------------------------------------------------------------------------------------------
# Memory


def _status_kib(name: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise OSError(f"bench_mix: /proc/self/status has no {name}.")
    return int(match.group(1))


def peak_extra_bytes(call: Callable[[], Any], device: str) -> int | None:
    """Peak memory one call adds over what was in use before it, counting what it returns."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        result = call()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        del result
        return int(peak)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        before = _status_kib("VmRSS")
        result = call()
        peak = _status_kib("VmHWM") - before
    except OSError:
        return None
    del result
    return peak * PAGE_KIB


def count_allocations(call: Callable[[], Any], min_bytes: int) -> int:
    """How many image tensors (3 or more dimensions) of ``min_bytes`` or more one call
    allocates: outputs of torch ops whose storage is none of the op's inputs' (every
    allocation in batchmix, torchvision and timm goes through a torch op; views and ``out=``
    results are not counted, and neither are the ``(B, K)`` label rows, which at 32 px are
    larger than the images)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Allocations(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(  # type: ignore[no-untyped-def]
            self, func, types, args=(), kwargs=None
        ):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            inputs = {
                t.untyped_storage().data_ptr()
                for t in tree_flatten((args, kwargs))[0]
                if isinstance(t, Tensor)
            }
            for t in tree_flatten(out)[0]:
                if isinstance(t, Tensor) and t.ndim >= 3:  # images; not (B, K) label rows
                    storage = t.untyped_storage()
                    if storage.nbytes() >= min_bytes and storage.data_ptr() not in inputs:
                        Allocations.count += 1
            return out

    with Allocations():
        result = call()
    del result
    return Allocations.count


def measure_memory(config: Config, min_bytes: int = MEMORY_MIN_BYTES) -> list[dict[str, Any]]:
    """Peak extra memory of one call of every candidate, for groups of ``min_bytes`` or more,
    and the full-size allocations of one call (:func:`count_allocations`) for every group.

    The kernel's resident-set counters are approximate by up to about half a MiB, so smaller
    batches (256 x 3 x 32 x 32) get no peak on the CPU. The peak counts pages written, so it
    cannot tell one allocation from two half-written ones; the allocation count can.
    """
    set_threads(config)
    rows = []
    for device, dtype_name, (batch, side), op in _groups(config):
        batch_bytes = batch * 3 * side * side * DTYPES[dtype_name].itemsize
        # The resident-set peak only where the counters are precise enough; allocations always.
        rss = not (device == "cpu" and batch_bytes < min_bytes)
        x, y, work, buf = build_inputs(device, DTYPES[dtype_name], batch, side)
        cands, _ = build_candidates(op, x, y, work, buf)
        for cand in cands:
            if cand.call is None or cand.library == "floor":
                continue
            fn = cand.call
            try:
                fn()
                fn()
            except (RuntimeError, ValueError, TypeError, AssertionError):
                continue
            # The peak counts what the call returns, even though the wrapper drops it after.
            _seed(0)
            extra = peak_extra_bytes(fn, device) if rss else None
            _seed(0)
            allocations = count_allocations(fn, batch_bytes)
            rows.append(
                {
                    **_key(device, dtype_name, batch, side, cand),
                    "peak_extra_bytes": extra,
                    "full_size_allocations": allocations,
                }
            )
        del x, y, work, buf, cands
    return rows


def memory_in_subprocess(config: Config) -> list[dict[str, Any]]:
    """Runs :func:`measure_memory` in a fresh process where big tensors are their own mappings."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    arg = json.dumps(asdict(config))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-probe", arg],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"memory probe failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return []
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------------------------
# Micro benchmark


def set_threads(config: Config) -> None:
    if config.threads > 0:
        torch.set_num_threads(config.threads)


def _groups(config: Config) -> list[tuple[str, str, tuple[int, int], str]]:
    return [
        (device, dtype_name, shape, op)
        for device in config.devices
        for dtype_name in config.dtypes
        for shape in config.shapes
        for op in config.ops
    ]


def _key(device: str, dtype: str, batch: int, side: int, cand: Candidate) -> dict[str, Any]:
    return {
        "op": cand.op,
        "library": cand.library,
        "dtype": dtype,
        "batch": batch,
        "size": side,
        "path": cand.path,
        "mode": cand.mode,
        "device": device,
    }


def run_group(
    config: Config, device: str, dtype_name: str, batch: int, side: int, op: str
) -> list[dict[str, Any]]:
    """Times one group and returns its rows."""
    x, y, work, buf = build_inputs(device, DTYPES[dtype_name], batch, side)
    cands, info = build_candidates(op, x, y, work, buf)
    sync = _sync(device)
    warm_up(cands, config.budget_s, sync)
    run_rounds(cands, config.rounds, sync)
    # Per (path, mode), the faster floor variant (by median), to which rows are compared; the
    # centred-box floors (reference only) apart.
    floors: dict[tuple[str, str], Candidate] = {}
    centred: dict[tuple[str, str], Candidate] = {}
    for c in cands:
        if c.library == "floor" and c.times:
            kept = centred if c.variant.startswith("centred") else floors
            best = kept.get((c.path, c.mode))
            if best is None or statistics.median(c.times) < statistics.median(best.times):
                kept[(c.path, c.mode)] = c
    # torchvision's row on the same path where it has one (CutOut: RandomErasing in place),
    # else its only path, out of place (CutMix and MixUp always allocate).
    tvs = {c.path: c for c in cands if c.library == "torchvision" and c.times}
    timm = {c.mode: c for c in cands if c.library == "timm" and c.times}
    batch_bytes = x.numel() * x.element_size()
    rows = []
    for cand in cands:
        row = _key(device, dtype_name, batch, side, cand)
        row.update(status=cand.skip or "ok", batch_bytes=batch_bytes)
        if cand.variant:
            row["variant"] = cand.variant
        if cand.times:
            ms = statistics.median(cand.times) * 1e3
            floor = floors.get((cand.path, cand.mode)) or floors.get((cand.path, "-"))
            row.update(
                ms=round(ms, 4),
                ms_min=round(min(cand.times) * 1e3, 4),
                ms_max=round(max(cand.times) * 1e3, 4),
                images_per_s=round(batch / ms * 1e3, 1),
                calls=cand.calls,
                rounds=len(cand.times),
            )
            if floor is not None and floor.times and cand.library != "floor":
                row["floor"] = info[f"floor_{cand.path.replace('-', '_')}"]
                row["floor_variant"] = floor.variant
                row["floor_ms"] = round(statistics.median(floor.times) * 1e3, 4)
                row["ratio_to_floor"] = _r(_median_ratio(cand.times, floor.times))
            reference = centred.get((cand.path, cand.mode))
            if reference is not None and cand.library == "batchmix":
                row["centred_floor_ms"] = round(statistics.median(reference.times) * 1e3, 4)
                row["ratio_to_centred_floor"] = _r(_median_ratio(cand.times, reference.times))
            if cand.library == "batchmix":
                tv = tvs.get(cand.path) or tvs.get("out-of-place")
                if tv is not None:
                    row["torchvision_path"] = tv.path
                    row["torchvision_ms"] = round(statistics.median(tv.times) * 1e3, 4)
                    row["torchvision_over_batchmix"] = _r(_median_ratio(tv.times, cand.times))
                    if floor is not None and floor.times:
                        # The most any kernel could reach against torchvision here.
                        row["torchvision_over_floor"] = _r(_median_ratio(tv.times, floor.times))
                ref = timm.get("batch" if cand.mode == "batch" else "elem")
                if ref is not None and cand.op != "cutout":
                    row["timm_ms"] = round(statistics.median(ref.times) * 1e3, 4)
                    row["timm_over_batchmix"] = _r(_median_ratio(ref.times, cand.times))
        mode = cand.mode if f"box_area_fraction_{cand.mode}" in info else "batch"
        for name in ("box_area_fraction", "floor_area_fraction", "centred_area_fraction"):
            value = info.get(f"{name}_{mode}", info.get(f"{name}_sample"))
            if value is not None and cand.op != "mixup":
                row[name] = round(value, 4)
        if "cutout_size" in info:
            row["cutout_size"] = info["cutout_size"]
        rows.append(row)
    # Per-sample against per-batch, paired by round.
    by_mode = {
        (c.path, c.mode): c
        for c in cands
        if c.library == "batchmix" and c.times and c.op != "cutout"
    }
    for row in rows:
        if row["library"] == "batchmix" and row["mode"] == "sample" and row["op"] != "cutout":
            per_batch = by_mode.get((row["path"], "batch"))
            per_sample = by_mode.get((row["path"], "sample"))
            if per_batch is not None and per_sample is not None:
                row["sample_over_batch"] = _r(_median_ratio(per_sample.times, per_batch.times))
    return rows


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def run_micro(config: Config, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for device, dtype_name, (batch, side), op in _groups(config):
        start = time.perf_counter()
        rows.extend(run_group(config, device, dtype_name, batch, side, op))
        log(
            f"  {device} {dtype_name} {batch}x3x{side}x{side} {op}: {time.perf_counter() - start:.1f} s"
        )
    return rows


def merge_memory(rows: list[dict[str, Any]], memory: list[dict[str, Any]]) -> None:
    keys = ("op", "library", "dtype", "batch", "size", "path", "mode", "device")
    found = {tuple(m[k] for k in keys): m for m in memory}
    for row in rows:
        measured = found.get(tuple(row[k] for k in keys))
        if measured is None:
            continue
        if measured.get("full_size_allocations") is not None:
            row["full_size_allocations"] = measured["full_size_allocations"]
        extra = measured["peak_extra_bytes"]
        if extra is None:
            continue
        labels = 0 if row["op"] == "cutout" else row["batch"] * NUM_CLASSES * 4
        # Label rows under the mapping threshold come from the heap and may not show in the RSS.
        counted = labels if labels >= MMAP_THRESHOLD or row["device"] != "cpu" else 0
        row["peak_extra_bytes"] = extra
        row["label_bytes"] = labels
        row["peak_extra_over_batch"] = round((extra - counted) / row["batch_bytes"], 3)
        row["peak_extra_with_labels_over_batch"] = round(extra / row["batch_bytes"], 3)


# --------------------------------------------------------------------------------------------
# End to end: DataLoader over JPEGs


def decode_jpeg(path: str) -> Tensor:
    """ImageFolder loader: the file's JPEG decoded with PIL to a ``(3, H, W)`` uint8 tensor."""
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB"))


def write_image_folder(root: Path, count: int, side: int, classes: int = 10) -> None:
    """``count`` JPEGs of ``side`` px in ``classes`` folders: smooth colours plus grain."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class_{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.random((side // 8, side // 8, 3)) * 255
        image = Image.fromarray(coarse.astype(np.uint8)).resize((side, side), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, 12, (side, side, 3))
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        (folder / f"{i:05d}.jpg").write_bytes(buffer.getvalue())


def collate_costs(
    dataset: Any,
    collates: dict[str, Callable[[list[Any]], Any]],
    batch: int,
    rounds: int = 15,
    in_worker: bool = True,
    contiguous: bool = False,
) -> dict[str, dict[str, float | None]]:
    """CPU time of one worker's work per batch: decoding ``batch`` JPEGs, then each collate.

    Each round decodes a fresh batch before each collate and times both with
    ``time.thread_time``, so a busy machine slows the wall clock but not these numbers, and
    every collate meets the samples as a worker does, just decoded. With ``in_worker`` this
    runs inside a DataLoader worker process, where batches are built in shared memory. With
    ``contiguous`` the decoded images (``(C, H, W)`` views of ``(H, W, C)`` pixels) are copied
    to contiguous tensors, as part of decoding.

    ``modelled_loss_percent`` is the extra collate time of a collate over ``collates["none"]``
    relative to the worker's whole time per batch with ``"none"``: the throughput a loader
    whose workers are CPU-bound loses (negative: gains).
    """
    if in_worker:
        from torch.utils.data import DataLoader

        job = _InWorker(
            functools.partial(collate_costs, dataset, collates, batch, rounds, False, contiguous)
        )
        loader: Any = DataLoader(job, batch_size=None, num_workers=1, collate_fn=_identity)
        result: dict[str, dict[str, float | None]] = next(iter(loader))
        return result
    decode: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in collates}
    offset = 0
    for r in range(rounds + 1):  # round 0 warms up (Numba loads its compiled loops)
        for name, collate in collates.items():
            start = time.thread_time()
            samples = [dataset[(offset + i) % len(dataset)] for i in range(batch)]
            if contiguous:
                samples = [(image.contiguous(), label) for image, label in samples]
            offset += batch
            middle = time.thread_time()
            collate(samples)
            stop = time.thread_time()
            if r:
                decode.append(middle - start)
                times[name].append(stop - middle)
    decode_ms = statistics.median(decode) * 1e3
    collate_ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    plain = decode_ms + collate_ms["none"]
    return {
        name: {
            "decode_ms_per_batch": round(decode_ms, 3),
            "collate_ms": round(ms, 3),
            "modelled_loss_percent": None
            if name == "none"
            else round(100.0 * (ms - collate_ms["none"]) / (plain + ms - collate_ms["none"]), 2),
        }
        for name, ms in collate_ms.items()
    }


class _InWorker(torch.utils.data.Dataset[Any]):
    """A one-item dataset whose item is ``job()``, computed in a DataLoader worker."""

    def __init__(self, job: Callable[[], Any]) -> None:
        self.job = job

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        return self.job()


def _identity(item: Any) -> Any:
    return item


def run_loader(
    config: Config, log: Callable[[str], None] = print
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Images per second of the same DataLoader with and without MixCollate, interleaved, and
    the CPU time of each collate (see :func:`collate_costs`) for channels-last samples (what
    PIL images become) and contiguous ones."""
    from torch.utils.data import DataLoader, default_collate
    from torchvision.datasets import ImageFolder

    if config.loader_images <= 0:
        return [], []
    with tempfile.TemporaryDirectory(prefix="bench_mix_") as tmp:
        root = Path(tmp)
        write_image_folder(root, config.loader_images, config.loader_size)
        dataset = ImageFolder(str(root), loader=decode_jpeg)
        classes = len(dataset.classes)
        collates: dict[str, Callable[[list[Any]], Any]] = {
            "none": default_collate,
            "cutmix": batchmix.MixCollate(batchmix.CutMix(num_classes=classes)),
            "mixup": batchmix.MixCollate(batchmix.MixUp(num_classes=classes)),
        }
        # MixCollate with mixing switched off: batchmix's own stacking, to tell the cost of
        # the mix from the gain of stacking channels-last samples faster than default_collate.
        unmixed = batchmix.CutMix(num_classes=classes)
        unmixed.enabled = False
        costed: dict[str, Callable[[list[Any]], Any]] = {
            **collates,
            "stack only": batchmix.MixCollate(unmixed),
        }
        loaders = {
            name: DataLoader(
                dataset,
                batch_size=config.loader_batch,
                shuffle=False,
                num_workers=config.loader_workers,
                persistent_workers=config.loader_workers > 0,
                collate_fn=collate,
            )
            for name, collate in collates.items()
        }

        def epoch(loader: DataLoader[Any]) -> float:
            start = time.perf_counter()
            seen = 0
            for images, _ in loader:
                seen += images.shape[0]
            return seen / (time.perf_counter() - start)

        in_worker = config.loader_workers > 0
        layouts = {"channels-last": False, "contiguous": True}
        costs = {
            layout: collate_costs(
                dataset, costed, config.loader_batch, in_worker=in_worker, contiguous=contiguous
            )
            for layout, contiguous in layouts.items()
        }
        for loader in loaders.values():
            epoch(loader)  # starts the workers; not timed
        names = list(loaders)
        speeds: dict[str, list[float]] = {name: [] for name in names}
        for r in range(config.loader_rounds):
            for i in range(len(names)):
                name = names[(i + r) % len(names)]
                speeds[name].append(epoch(loaders[name]))
        del loaders
    rows = []
    for name in names:
        loss = None
        if name != "none":
            ratio = _median_ratio(speeds[name], speeds["none"])
            loss = None if ratio is None else round(100.0 * (1.0 - ratio), 2)
        rows.append(
            {
                "mix": name,
                "images": config.loader_images,
                "size": config.loader_size,
                "batch": config.loader_batch,
                "workers": config.loader_workers,
                "dtype": "uint8",
                "images_per_s": round(statistics.median(speeds[name]), 1),
                "images_per_s_all": [round(s, 1) for s in speeds[name]],
                "loss_percent": loss,
                **costs["channels-last"][name],
            }
        )
    collate_rows = []
    for layout, by_name in costs.items():
        stack_ms = by_name["stack only"]["collate_ms"]
        for name, cost in by_name.items():
            ms = cost["collate_ms"]
            collate = "default_collate" if name == "none" else f"MixCollate({name})"
            mixing = name in ("cutmix", "mixup")
            collate_rows.append(
                {
                    "samples": layout,
                    "collate": collate,
                    "in_worker": in_worker,
                    "batch": config.loader_batch,
                    "size": config.loader_size,
                    **cost,
                    "mix_ms_over_stack": round(ms - stack_ms, 3)
                    if mixing and ms is not None and stack_ms is not None
                    else None,
                }
            )
    log(f"  loader: {config.loader_rounds} rounds of {len(names)} epochs")
    return rows, collate_rows


# --------------------------------------------------------------------------------------------
# Targets, machine, report


def evaluate_targets(
    rows: list[dict[str, Any]], loader: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The issue's targets, per device and image shape, each with the worst row it covers."""
    bm = [r for r in rows if r["library"] == "batchmix" and r.get("ms") is not None]
    out: list[dict[str, Any]] = []

    def worst(
        name: str, items: list[dict[str, Any]], field_: str, limit: float, most: bool
    ) -> None:
        shapes = sorted({(r["device"], r["batch"], r["size"]) for r in items})
        for device, batch, size in shapes:
            values = [
                (r[field_], r)
                for r in items
                if (r["device"], r["batch"], r["size"]) == (device, batch, size)
                and r.get(field_) is not None
            ]
            if not values:
                continue
            value, row = (max if most else min)(values, key=lambda v: v[0])
            target = {
                "target": name,
                "device": device,
                "shape": f"{batch}x3x{size}x{size}",
                "limit": limit,
                "worst": value,
                "where": f"{row['op']} {row['dtype']} {row['path']} {row['mode']}",
                "met": value <= limit if most else value >= limit,
            }
            if field_ == "torchvision_over_batchmix" and row.get("torchvision_over_floor"):
                target["torchvision_over_floor"] = row["torchvision_over_floor"]
            out.append(target)

    per_batch = [r for r in bm if r["mode"] == "batch" or r["op"] == "cutout"]
    inplace = [r for r in per_batch if r["path"] == "inplace"]
    oop = [r for r in per_batch if r["path"] == "out-of-place"]
    for op in ("cutmix", "cutout", "mixup"):
        items = [r for r in inplace if r["op"] == op]
        worst(f"in-place {op} / floor <= 1.5", items, "ratio_to_floor", 1.5, True)
    for op in ("cutmix", "cutout", "mixup"):
        items = [r for r in inplace if r["op"] == op]
        name = f"in-place {op}: torchvision / batchmix >= 20"
        worst(name, items, "torchvision_over_batchmix", 20.0, False)
    for op in ("cutmix", "cutout", "mixup"):
        items = [r for r in oop if r["op"] == op]
        name = f"out-of-place {op}: torchvision / batchmix >= 1.8"
        worst(name, items, "torchvision_over_batchmix", 1.8, False)
    oop_all = [r for r in bm if r["path"] == "out-of-place"]
    worst("out-of-place: peak extra memory <= 1 batch", oop_all, "peak_extra_over_batch", 1.0, True)
    name = "out-of-place: full-size allocations per call <= 1"
    worst(name, oop_all, "full_size_allocations", 1, True)
    worst("per-sample / per-batch <= 2", bm, "sample_over_batch", 2.0, True)
    for row in loader:
        if row["loss_percent"] is None:
            continue
        out.append(
            {
                "target": f"DataLoader + MixCollate({row['mix']}): throughput loss <= 3 %",
                "device": "cpu",
                "shape": f"{row['batch']}x3x{row['size']}x{row['size']}",
                "limit": 3.0,
                "worst": row["loss_percent"],
                "where": f"uint8 JPEGs, {row['workers']} workers",
                "met": row["loss_percent"] <= 3.0,
            }
        )
        modelled = row.get("modelled_loss_percent")
        if modelled is not None:
            out.append(
                {
                    "target": f"  same, modelled from CPU time per batch (MixCollate({row['mix']}))",
                    "device": "cpu",
                    "shape": f"{row['batch']}x3x{row['size']}x{row['size']}",
                    "limit": 3.0,
                    "worst": modelled,
                    "where": "extra collate time / worker time per batch",
                    "met": modelled <= 3.0,
                }
            )
    return out


def machine_info(devices: Sequence[str]) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "batchmix": batchmix.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:  # decides whether batchmix's out-of-place outputs get huge pages (batchmix._memory)
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        match = re.search(r"\[(\w+)\]", thp)
        info["transparent_hugepages"] = match.group(1) if match else thp.strip()
    except OSError:
        info["transparent_hugepages"] = None
    info["batchmix_hugepages"] = _memory.ENABLED
    for name in ("torchvision", "timm", "numpy"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    if any(d.startswith("cuda") for d in devices):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    return format(value, spec)


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per batchmix row, with the floor, torchvision and timm beside it."""
    header = (
        f"{'device':6} {'op':6} {'dtype':7} {'shape':>7} {'path':12} {'mode':6} "
        f"{'ms':>8} {'img/s':>9} {'floor ms':>8} {'/floor':>6} {'tv ms':>8} {'tv/bm':>6} "
        f"{'timm ms':>8} {'timm/bm':>7} {'smp/bat':>7} {'mem':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        if r["library"] != "batchmix":
            continue
        lines.append(
            f"{r['device']:6} {r['op']:6} {r['dtype']:7} {str(r['batch']) + 'x' + str(r['size']):>7} "
            f"{r['path']:12} {r['mode']:6} {_fmt(r.get('ms'), '.3f'):>8} "
            f"{_fmt(r.get('images_per_s'), '.0f'):>9} {_fmt(r.get('floor_ms'), '.3f'):>8} "
            f"{_fmt(r.get('ratio_to_floor')):>6} {_fmt(r.get('torchvision_ms'), '.3f'):>8} "
            f"{_fmt(r.get('torchvision_over_batchmix'), '.1f'):>6} {_fmt(r.get('timm_ms'), '.3f'):>8} "
            f"{_fmt(r.get('timm_over_batchmix'), '.1f'):>7} {_fmt(r.get('sample_over_batch')):>7} "
            f"{_fmt(r.get('peak_extra_over_batch')):>5}"
        )
    return "\n".join(lines)


def format_others(rows: list[dict[str, Any]]) -> str:
    """Reference rows (torchvision, timm, floors), and what did not run."""
    lines = []
    for r in rows:
        if r["library"] == "batchmix":
            continue
        shape = f"{r['batch']}x{r['size']}"
        what = f"{r['device']:6} {r['op']:6} {r['dtype']:7} {shape:>7} {r['library']:11} {r['path']:12} {r['mode']:6}"
        if r.get("ms") is None:
            lines.append(f"{what} {r['status']}")
        else:
            lines.append(
                f"{what} {r['ms']:9.3f} ms {r['images_per_s']:10.0f} img/s"
                f"  mem {_fmt(r.get('peak_extra_over_batch'))}"
            )
    return "\n".join(lines)


def format_loader(loader: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {r['mix']:7} {r['images_per_s']:8.1f} img/s  loss {_fmt(r['loss_percent'], '+.2f')} %"
        f"  collate {_fmt(r.get('collate_ms'), '.2f')} ms CPU per batch"
        f" (decode {_fmt(r.get('decode_ms_per_batch'), '.1f')} ms),"
        f" modelled loss {_fmt(r.get('modelled_loss_percent'), '.2f')} %"
        for r in loader
    )


def format_collate(collate: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {r['samples']:13} {r['collate']:26} {_fmt(r['collate_ms'], '.2f')} ms"
        f"  modelled loss {_fmt(r['modelled_loss_percent'], '+.2f')} %"
        f"  mix over stack {_fmt(r['mix_ms_over_stack'], '.2f')} ms"
        for r in collate
    )


def format_targets(targets: list[dict[str, Any]]) -> str:
    lines = []
    for t in targets:
        bound = t.get("torchvision_over_floor")
        note = f"; torchvision / floor {bound}" if bound is not None else ""
        lines.append(
            f"  [{'met ' if t['met'] else 'MISS'}] {t['target']:58} {t['device']:4} {t['shape']:13}"
            f" worst {t['worst']} ({t['where']}{note})"
        )
    return "\n".join(lines)


def run(config: Config, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole benchmark; returns what is written as JSON."""
    started = time.perf_counter()
    set_threads(config)
    log(f"micro benchmark ({config.rounds} rounds, {config.budget_s:.2f} s per measurement):")
    rows = run_micro(config, log)
    if config.memory:
        log("memory (one call per candidate, fresh process)...")
        merge_memory(rows, memory_in_subprocess(config))
    log("end to end (DataLoader)...")
    loader, collate = run_loader(config, log)
    targets = evaluate_targets(rows, loader)
    return {
        "machine": machine_info(config.devices),
        "config": asdict(config),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "loader": loader,
        "collate": collate,
        "targets": targets,
    }


def report(result: dict[str, Any]) -> str:
    m = result["machine"]
    parts = [
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + f", {m['date']}",
        "",
        "batchmix (ms: median per call; /floor, tv/bm, timm/bm, smp/bat: medians of per-round ratios;"
        " mem: peak extra memory of one call / batch bytes, label rows excluded)",
        format_table(result["rows"]),
        "",
        "references:",
        format_others(result["rows"]),
        "",
        "DataLoader end to end (uint8 JPEGs, MixCollate vs default_collate):",
        format_loader(result["loader"]),
        "",
        "collate CPU time per batch (one worker; modelled loss against default_collate):",
        format_collate(result.get("collate", [])),
        "",
        "targets (issue 4):",
        format_targets(result["targets"]),
        f"\ntotal {result['seconds']} s",
    ]
    return "\n".join(parts)


def _parse_shapes(text: str) -> tuple[tuple[int, int], ...]:
    shapes = []
    for item in text.split(","):
        batch, _, side = item.strip().partition("x")
        if not batch.isdigit() or not side.isdigit():
            raise argparse.ArgumentTypeError(f"expected shapes like 64x224,256x32, got {text!r}")
        shapes.append((int(batch), int(side)))
    return tuple(shapes)


def parse_args(argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="a short run (about 30 s)")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: the CPU, and CUDA too when present",
    )
    parser.add_argument("--shapes", type=_parse_shapes, help="e.g. 64x224,256x224,256x32")
    parser.add_argument("--dtypes", help="comma-separated: float32,uint8")
    parser.add_argument("--ops", help="comma-separated: cutmix,mixup,cutout")
    parser.add_argument(
        "--threads", type=int, help="intra-op threads (default 1; 0: torch's default)"
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--budget", type=float, help="seconds per measurement")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--loader-images", type=int, help="0 skips the DataLoader benchmark")
    parser.add_argument("--loader-size", type=int)
    parser.add_argument("--loader-workers", type=int)
    parser.add_argument("--loader-rounds", type=int)
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    if args.device == "auto":
        devices: tuple[str, ...] = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available")
        devices = (args.device,)
    changes: dict[str, Any] = {"devices": devices}
    if args.shapes:
        changes["shapes"] = args.shapes
    for name in ("dtypes", "ops"):
        value = getattr(args, name)
        if value:
            items = tuple(v.strip() for v in value.split(","))
            allowed = tuple(DTYPES) if name == "dtypes" else OPS
            bad = [v for v in items if v not in allowed]
            if bad:
                parser.error(f"--{name}: expected values among {', '.join(allowed)}, got {bad}")
            changes[name] = items
    for name, attr in (
        ("threads", "threads"),
        ("rounds", "rounds"),
        ("budget", "budget_s"),
        ("loader_images", "loader_images"),
        ("loader_size", "loader_size"),
        ("loader_workers", "loader_workers"),
        ("loader_rounds", "loader_rounds"),
    ):
        value = getattr(args, name)
        if value is not None:
            changes[attr] = value
    if args.no_memory:
        changes["memory"] = False
    return replace(config, **changes), args


def config_from_json(text: str) -> Config:
    """The :class:`Config` that ``json.dumps(asdict(config))`` wrote (lists back to tuples)."""
    raw = json.loads(text)
    raw["shapes"] = tuple(tuple(shape) for shape in raw["shapes"])
    for name in ("dtypes", "ops", "devices"):
        raw[name] = tuple(raw[name])
    return Config(**raw)


def main(argv: Sequence[str] | None = None) -> int:
    config, args = parse_args(argv)
    if args.memory_probe:
        print(json.dumps(measure_memory(config_from_json(args.memory_probe))))
        return 0
    result = run(config)
    print()
    print(report(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

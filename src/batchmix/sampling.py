"""Random draws for the mixers: λ, partners, boxes and apply decisions.

Every function here takes ``generator=`` and draws only from it (or from torch's global RNG when it
is ``None``), on the CPU. The drawn quantities are small (one number or one row per sample) and are
moved to the images' device by the kernels in :mod:`batchmix.functional`.

Inside a :class:`~torch.utils.data.DataLoader` worker, an explicit generator is forked per worker
(see :func:`resolve_generator`): every worker process receives a pickled copy of the same
generator, and without the fork all workers would draw identical λ and boxes.
"""

from __future__ import annotations

import math
import threading
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from batchmix import _fast

__all__ = [
    "MODES",
    "PARTNERS",
    "Mode",
    "Partner",
    "bernoulli",
    "bernoulli_one",
    "beta",
    "beta_one",
    "box_area_fraction",
    "cutmix_box",
    "cutmix_boxes",
    "cutout_boxes",
    "partner_index",
    "randint_one",
    "random_seed",
    "resolve_generator",
]

Mode = Literal["batch", "pair", "sample"]
Partner = Literal["roll", "flip", "random"]
MODES: tuple[str, ...] = get_args(Mode)
PARTNERS: tuple[str, ...] = get_args(Partner)

_SEED_BOUND = 2**62
# Per-thread scratch tensors of randint_one.
_SCRATCH = threading.local()
# Per-process cache of forked generators: id(original) -> (worker seed, original, forked).
_WORKER_FORKS: dict[int, tuple[int, torch.Generator, torch.Generator]] = {}


def resolve_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """Returns the generator to draw from in this process.

    Outside DataLoader workers, and for ``None`` (torch's global RNG, which the DataLoader already
    seeds differently in each worker), this is the argument itself. Inside a worker, an explicit
    generator is replaced by one seeded from its initial seed and the worker's seed, so workers
    draw differently from each other while a seeded DataLoader run stays reproducible.
    """
    info = get_worker_info()
    if generator is None or info is None:
        return generator
    cached = _WORKER_FORKS.get(id(generator))
    if cached is not None and cached[0] == info.seed and cached[1] is generator:
        return cached[2]
    # Both seeds hashed together: a plain sum would, for a generator seeded with 0, give the
    # worker's own seed, the seed of the worker's global RNG (the dataset's augmentations).
    entropy = [generator.initial_seed(), info.seed]
    seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]) % _SEED_BOUND
    forked = torch.Generator(device=generator.device).manual_seed(seed)
    _WORKER_FORKS[id(generator)] = (info.seed, generator, forked)
    return forked


def random_seed(generator: torch.Generator | None) -> int:
    """Draws a seed for a NumPy generator from ``generator`` (or torch's global RNG)."""
    return randint_one(_SEED_BOUND, generator)


def randint_one(high: int, generator: torch.Generator | None) -> int:
    """``int(torch.randint(high, (1,), generator=generator, device="cpu"))``: the same draw and
    value, made into a scratch tensor of this thread (``randint`` is
    ``empty(...).random_(0, high)``), which saves the allocation on the path every call takes.

    The scratch is a plain CPU tensor made outside inference mode, whatever the context of the
    first call; when a mode turns it into something else (a fake or meta tensor), nothing is
    kept and the draw goes through ``torch.randint``.
    """
    scratch = getattr(_SCRATCH, "int64", None)
    if scratch is None:
        with torch.inference_mode(False):
            scratch = torch.empty(1, dtype=torch.long, device="cpu")
        if type(scratch) is not Tensor or not scratch.is_cpu:
            return int(torch.randint(high, (1,), generator=generator, device="cpu"))
        _SCRATCH.int64 = scratch
    return int(scratch.random_(0, high, generator=generator).item())


def beta(alpha: float, n: int, generator: torch.Generator | None) -> Tensor:
    """Draws ``n`` values of Beta(alpha, alpha) as a float64 tensor of shape ``(n,)``.

    torch's Beta sampler takes no generator, so the values are those of a NumPy generator seeded
    from ``generator``, ``np.random.default_rng(seed).beta(alpha, alpha, size=n)``; equal torch
    seeds therefore still give equal λ. For 1e-100 <= alpha <= 1, with NumPy 2.1 or later, a
    compiled loop computes the same numbers, bit for bit, without building the NumPy generator
    (see :mod:`batchmix._loops`).
    """
    seed = random_seed(generator)
    values = _fast.beta_draws(alpha, n, seed)
    if values is None:
        values = np.random.default_rng(seed).beta(alpha, alpha, size=n)
    return torch.from_numpy(values)


def beta_one(alpha: float, generator: torch.Generator | None) -> float:
    """One value of Beta(alpha, alpha): the draws and the value of ``beta(alpha, 1, generator)``,
    as a Python float."""
    seed = random_seed(generator)
    value = _fast.beta_draw(alpha, seed)
    if value is None:
        value = float(np.random.default_rng(seed).beta(alpha, alpha))
    return value


def bernoulli_one(p: float, generator: torch.Generator | None) -> bool:
    """One apply decision: the draws and the value of ``bernoulli(p, 1, generator)``, as a bool."""
    if p >= 1.0:
        return True
    if p <= 0.0:
        return False
    return bool(torch.rand(1, generator=generator, dtype=torch.float64).item() < p)


def bernoulli(p: float, n: int, generator: torch.Generator | None) -> Tensor:
    """Draws ``n`` booleans that are ``True`` with probability ``p``."""
    if p >= 1.0:
        return torch.ones(n, dtype=torch.bool)
    if p <= 0.0:
        return torch.zeros(n, dtype=torch.bool)
    return torch.rand(n, generator=generator, dtype=torch.float64) < p


def partner_index(
    batch_size: int, partner: Partner, generator: torch.Generator | None, *, pairs: bool = False
) -> Tensor:
    """Index of each sample's partner, shape ``(B,)``, dtype int64.

    ``"roll"`` pairs sample i with i−1 (torchvision's ``roll(1, 0)``), ``"flip"`` with B−1−i
    (timm's ``flip(0)``), ``"random"`` with the next sample along a random cyclic order, so that no
    sample is paired with itself when B ≥ 2. A batch of one is paired with itself.

    With ``pairs=True`` the index is its own inverse (sample i's partner has i as its partner):
    ``"flip"`` already is; ``"random"`` pairs the samples two by two along a random order, the
    last one of an odd batch with itself; ``"roll"`` is refused.
    """
    if pairs and partner == "random":
        order = torch.randperm(batch_size, generator=generator)
        half = batch_size // 2
        first, second = order[:half], order[half : 2 * half]
        index = torch.arange(batch_size)
        index[first] = second
        index[second] = first
        return index
    if pairs and partner == "roll":
        raise ValueError(
            "partner_index: expected partner 'flip' or 'random' with pairs=True ('roll' pairs "
            "sample i with i−1, whose partner is i−2), got 'roll'."
        )
    # Built with NumPy, whose per-op cost on a few hundred numbers is a fraction of torch's.
    if partner == "roll":
        roll = np.arange(-1, batch_size - 1, dtype=np.int64)
        roll[:1] = batch_size - 1
        return torch.from_numpy(roll)
    if partner == "flip":
        return torch.from_numpy(np.arange(batch_size - 1, -1, -1, dtype=np.int64))
    order = torch.randperm(batch_size, generator=generator)
    index = torch.empty_like(order)
    index[order] = order.roll(-1, 0)
    return index


def _clip_boxes(
    cy: Tensor, cx: Tensor, half_h: Tensor, half_w: Tensor, height: int, width: int
) -> Tensor:
    x1 = (cx - half_w).clamp(min=0)
    y1 = (cy - half_h).clamp(min=0)
    x2 = (cx + half_w).clamp(max=width)
    y2 = (cy + half_h).clamp(max=height)
    return torch.stack([x1, y1, x2, y2], dim=1)


def cutmix_boxes(
    lam: Tensor,
    height: int,
    width: int,
    generator: torch.Generator | None,
    box_range: tuple[float, float] | None = None,
) -> Tensor:
    """Boxes ``(x1, y1, x2, y2)`` of shape ``(n, 4)``, int64, one for each λ in ``lam``.

    Without ``box_range``, the box centre is uniform over the pixel grid and its sides are
    2·⌊½·√(1−λ)·H⌋ by 2·⌊½·√(1−λ)·W⌋ (torchvision's rounding; timm's sides are ⌊√(1−λ)·H⌋,
    a pixel longer when that is odd), clipped to the image.
    With ``box_range=(lo, hi)``, side lengths are drawn uniformly from
    ``[⌊lo·H⌋, ⌊hi·H⌋]`` (and likewise for W), independently of λ, and the box is placed
    uniformly among all positions that keep it inside the image, the last one included.
    """
    n = lam.shape[0]
    if box_range is None:
        cx, cy = _centres(n, height, width, generator)
        # NumPy on a few hundred numbers costs a fraction of torch's per-op cost; the float64
        # arithmetic (a correctly rounded square root, products, floors) is the same.
        lam64 = lam.detach().to(device="cpu", dtype=torch.float64).numpy()
        ratio = 0.5 * np.sqrt(1.0 - lam64)
        half_w = np.floor(ratio * width).astype(np.int64)
        half_h = np.floor(ratio * height).astype(np.int64)
        boxes = np.empty((4, n), dtype=np.int64)
        np.maximum(cx - half_w, 0, out=boxes[0])
        np.maximum(cy - half_h, 0, out=boxes[1])
        np.minimum(cx + half_w, width, out=boxes[2])
        np.minimum(cy + half_h, height, out=boxes[3])
        return torch.from_numpy(boxes.T.copy())
    lo, hi = box_range
    cut_h = _uniform_int(int(lo * height), int(hi * height), n, generator)
    cut_w = _uniform_int(int(lo * width), int(hi * width), n, generator)
    y1 = _uniform_int_upto(height - cut_h, generator)
    x1 = _uniform_int_upto(width - cut_w, generator)
    return torch.stack([x1, y1, x1 + cut_w, y1 + cut_h], dim=1)


def cutmix_box(
    lam: float, height: int, width: int, generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """One box of :func:`cutmix_boxes` (no ``box_range``) for a Python float λ, as ints.

    It draws the same numbers from ``generator`` and does the same float64 arithmetic, so it
    equals ``cutmix_boxes(torch.tensor([lam]), ...)[0]``; it skips the small-tensor ops, which
    cost more than the rest of a call on small images.
    """
    cx = randint_one(width, generator)
    cy = randint_one(height, generator)
    ratio = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = math.floor(ratio * width), math.floor(ratio * height)
    return (
        max(cx - half_w, 0),
        max(cy - half_h, 0),
        min(cx + half_w, width),
        min(cy + half_h, height),
    )


def _uniform_int(low: int, high: int, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` integers uniform on ``[low, high]``, both ends included."""
    return torch.randint(low, high + 1, (n,), generator=generator)


def _uniform_int_upto(high: Tensor, generator: torch.Generator | None) -> Tensor:
    """One integer uniform on ``[0, high[i]]`` for every entry of ``high``."""
    u = torch.rand(high.shape[0], generator=generator, dtype=torch.float64)
    return torch.minimum((u * (high + 1).to(torch.float64)).floor().long(), high)


def _centres(
    n: int, height: int, width: int, generator: torch.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Box centres: x from ``torch.randint(width, (n,))``, then y from ``torch.randint(height,
    (n,))``; for square images one draw of 2n, the same numbers in the same order (torch's CPU
    generator fills a tensor element by element)."""
    if height == width:
        both = torch.randint(width, (2 * n,), generator=generator, device="cpu").numpy()
        return both[:n], both[n:]
    cx = torch.randint(width, (n,), generator=generator, device="cpu").numpy()
    cy = torch.randint(height, (n,), generator=generator, device="cpu").numpy()
    return cx, cy


def cutout_boxes(
    n: int, size: int, height: int, width: int, generator: torch.Generator | None
) -> Tensor:
    """Squares of side ``size`` at uniform centres, clipped: ``(n, 4)`` boxes ``(x1, y1, x2, y2)``."""
    cx, cy = _centres(n, height, width, generator)
    boxes = _fast.square_boxes(cx, cy, size, height, width)
    if boxes is not None:
        return torch.from_numpy(boxes)
    # Small arrays: NumPy's ufuncs cost a fraction of torch's ops (and of np.clip) per call.
    corners = np.empty((4, n), dtype=np.int64)
    np.subtract(cx, size // 2, out=corners[0])
    np.subtract(cy, size // 2, out=corners[1])
    np.add(corners[0], size, out=corners[2])
    np.add(corners[1], size, out=corners[3])
    np.maximum(corners, 0, out=corners)
    np.minimum(corners[0::2], width, out=corners[0::2])
    np.minimum(corners[1::2], height, out=corners[1::2])
    return torch.from_numpy(corners.T.copy())


def box_area_fraction(boxes: Tensor, height: int, width: int) -> Tensor:
    """Share of the image covered by each box, float64 of shape ``(n,)``."""
    if boxes.is_cpu and boxes.dtype == torch.int64 and not boxes.requires_grad:
        b = boxes.numpy()  # the same integer areas and float64 division, at NumPy's per-op cost
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        return torch.from_numpy(area.astype(np.float64) / float(height * width))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return area.to(torch.float64) / float(height * width)


def fmix_masks(
    lam: Tensor,
    height: int,
    width: int,
    generator: torch.Generator | None,
    decay_power: float = 3.0,
) -> Tensor:
    """FMix masks (Harris et al., 2020): ``(n, H, W)`` booleans, ``True`` where the partner shows.

    Low-frequency noise is drawn in the Fourier domain with amplitude ``1 / f^decay_power`` and
    transformed back; the ``round((1−λ)·H·W)`` pixels with the largest values form the mask, so
    the partner's pixel share is ``(1−λ)`` up to one pixel.
    """
    n = lam.shape[0]
    fy = torch.fft.fftfreq(height, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.rfftfreq(width, dtype=torch.float64).view(1, -1)
    freq = torch.sqrt(fy**2 + fx**2).clamp(min=1.0 / max(height, width))
    scale = freq.pow(-decay_power)
    # The inverse real transform keeps only the Hermitian part of the columns that are their
    # own mirror image (x-frequency 0, and W/2 for even W), which halves their power: √2 there
    # makes the noise isotropic, as the paper's complex Gaussian field is.
    scale[:, 0] *= math.sqrt(2.0)
    if width % 2 == 0 and width > 1:
        scale[:, -1] *= math.sqrt(2.0)
    spectrum = torch.randn((n, 2, *scale.shape), generator=generator, dtype=torch.float64)
    spectrum = torch.complex(spectrum[:, 0], spectrum[:, 1]) * scale
    grey = torch.fft.irfftn(spectrum, s=(height, width), dim=(-2, -1)).flatten(1)
    ranks = torch.empty_like(grey, dtype=torch.long)
    ranks.scatter_(
        1, grey.argsort(dim=1, descending=True), torch.arange(height * width).expand(n, -1)
    )
    count = ((1.0 - lam.to(torch.float64)) * height * width).round().long()
    return (ranks < count.view(-1, 1)).view(n, height, width)


def grid_masks(
    lam: Tensor,
    height: int,
    width: int,
    generator: torch.Generator | None,
    grid: tuple[int, int] = (2, 6),
) -> Tensor:
    """GridMix masks: ``(n, H, W)`` booleans over a g×g grid, g uniform in ``grid`` (inclusive).

    ``round((1−λ)·g²)`` cells, chosen at random, come from the partner.
    """
    n = lam.shape[0]
    low, high = grid
    cells = torch.randint(low, high + 1, (n,), generator=generator)
    scores = torch.rand(n, high * high, generator=generator)
    scores[torch.arange(high * high).view(1, -1) >= (cells * cells).view(-1, 1)] = 2.0
    ranks = torch.empty_like(scores, dtype=torch.long)
    ranks.scatter_(1, scores.argsort(dim=1), torch.arange(high * high).expand(n, -1))
    chosen = ranks < ((1.0 - lam.to(torch.float64)) * cells * cells).round().long().view(-1, 1)
    cell_row = (torch.arange(height).view(1, -1) * cells.view(-1, 1)) // height
    cell_col = (torch.arange(width).view(1, -1) * cells.view(-1, 1)) // width
    cell = cell_row.unsqueeze(2) * cells.view(-1, 1, 1) + cell_col.unsqueeze(1)
    return chosen.gather(1, cell.flatten(1)).view(n, height, width)


def resize_boxes(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator | None,
    scale: tuple[float, float] = (0.1, 0.8),
) -> Tensor:
    """ResizeMix paste boxes: side ratio τ ~ U(scale), placed uniformly inside the image."""
    tau = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator, dtype=torch.float64)
    box_h = (tau * height).round().long().clamp(1, height)
    box_w = (tau * width).round().long().clamp(1, width)
    y1 = _uniform_int_upto(height - box_h, generator)
    x1 = _uniform_int_upto(width - box_w, generator)
    return torch.stack([x1, y1, x1 + box_w, y1 + box_h], dim=1)


def mosaic_centres(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator | None,
    centre_range: tuple[float, float] = (0.25, 0.75),
) -> Tensor:
    """Mosaic centres ``(n, 2)`` as ``(cx, cy)``, uniform in ``centre_range`` of each side."""
    lo, hi = centre_range
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    frac = lo + (hi - lo) * u
    return torch.stack([(frac[:, 0] * width).round(), (frac[:, 1] * height).round()], 1).long()


def boxes_at(centres_xy: Tensor, lam: Tensor, height: int, width: int) -> Tensor:
    """CutMix-sized boxes (sides from λ as in :func:`cutmix_boxes`) around given centres."""
    ratio = 0.5 * torch.sqrt(1.0 - lam.to(torch.float64))
    half_w = (ratio * width).floor().long()
    half_h = (ratio * height).floor().long()
    return _clip_boxes(centres_xy[:, 1], centres_xy[:, 0], half_h, half_w, height, width)

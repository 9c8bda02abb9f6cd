"""The draws of batchmix.sampling: scalar shortcuts equal the tensor draws, boxes and partners."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from batchmix import MixUp, _fast, sampling


def _pair(seed: int) -> tuple[torch.Generator, torch.Generator]:
    return torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)


@given(seed=st.integers(0, 2**32), alpha=st.sampled_from([0.2, 1.0, 2.5]))
def test_beta_one_draws_what_beta_draws(seed: int, alpha: float) -> None:
    a, b = _pair(seed)
    value = sampling.beta_one(alpha, a)
    assert type(value) is float
    assert value == float(sampling.beta(alpha, 1, b)[0])
    assert torch.equal(a.get_state(), b.get_state())  # the same draws were consumed


@given(seed=st.integers(0, 2**32), p=st.sampled_from([-1.0, 0.0, 0.3, 0.5, 0.99, 1.0, 2.0]))
def test_bernoulli_one_draws_what_bernoulli_draws(seed: int, p: float) -> None:
    a, b = _pair(seed)
    value = sampling.bernoulli_one(p, a)
    assert type(value) is bool
    assert value == bool(sampling.bernoulli(p, 1, b)[0])
    assert torch.equal(a.get_state(), b.get_state())


@pytest.mark.parametrize("batch", [0, 1, 2, 7])
def test_roll_and_flip_partners(batch: int) -> None:
    arange = torch.arange(batch)
    roll = sampling.partner_index(batch, "roll", None)
    flip = sampling.partner_index(batch, "flip", None)
    assert roll.dtype == flip.dtype == torch.long
    assert torch.equal(roll, arange.roll(1, 0))  # torchvision's pairing: i with i - 1
    assert torch.equal(flip, arange.flip(0))  # timm's pairing: i with B - 1 - i


@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 20),
    size=st.integers(1, 40),
    height=st.integers(1, 33),
    width=st.integers(1, 33),
    square=st.booleans(),
    compiled=st.booleans(),
)
def test_cutout_boxes_are_clipped_squares_at_uniform_centres(
    seed: int, n: int, size: int, height: int, width: int, square: bool, compiled: bool
) -> None:
    """Square images draw their centres in one call of 2n; the boxes are computed by a compiled
    loop or, without it, by NumPy: each way, the draws and values of the torch formula."""
    width = height if square else width
    a, b = _pair(seed)
    _fast.ENABLED = compiled
    try:
        boxes = sampling.cutout_boxes(n, size, height, width, a)
    finally:
        _fast.ENABLED = True
    cx = torch.randint(width, (n,), generator=b)
    cy = torch.randint(height, (n,), generator=b)
    assert boxes.shape == (n, 4) and boxes.dtype == torch.long
    x1, y1 = cx - size // 2, cy - size // 2
    assert torch.equal(boxes[:, 0], x1.clamp(0, width))
    assert torch.equal(boxes[:, 1], y1.clamp(0, height))
    assert torch.equal(boxes[:, 2], (x1 + size).clamp(0, width))
    assert torch.equal(boxes[:, 3], (y1 + size).clamp(0, height))
    assert torch.equal(a.get_state(), b.get_state())
    boxes[:, 0] = -1  # a tensor of its own, writable (CutOut zeroes the boxes of skipped samples)


def test_cutout_boxes_are_drawn_on_the_cpu_whatever_the_default_device() -> None:
    a, b = _pair(3)
    with torch.device("meta"):
        boxes = sampling.cutout_boxes(4, 8, 16, 16, a)
    assert boxes.device.type == "cpu"
    assert torch.equal(boxes, sampling.cutout_boxes(4, 8, 16, 16, b))


def _cutmix_boxes_in_torch(
    lam: torch.Tensor, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """cutmix_boxes written with torch ops throughout: the formula the NumPy path must match."""
    n = lam.shape[0]
    cx = torch.randint(width, (n,), generator=generator)
    cy = torch.randint(height, (n,), generator=generator)
    ratio = 0.5 * torch.sqrt(1.0 - lam.to(torch.float64))
    half_w = (ratio * width).floor().long()
    half_h = (ratio * height).floor().long()
    return torch.stack(
        [
            (cx - half_w).clamp(min=0),
            (cy - half_h).clamp(min=0),
            (cx + half_w).clamp(max=width),
            (cy + half_h).clamp(max=height),
        ],
        dim=1,
    )


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(0, 300),
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    float32=st.booleans(),
    square=st.booleans(),
)
def test_cutmix_boxes_match_the_torch_formula(
    seed: int, n: int, height: int, width: int, float32: bool, square: bool
) -> None:
    width = height if square else width
    g = torch.Generator().manual_seed(seed)
    lam = torch.rand(n, dtype=torch.float64, generator=g)
    edges = torch.tensor([0.0, 1.0, 0.5, 0.75, 1e-300], dtype=torch.float64)
    lam[: min(n, 5)] = edges[: min(n, 5)]
    lam = lam.float() if float32 else lam
    ours = sampling.cutmix_boxes(lam, height, width, torch.Generator().manual_seed(seed))
    reference = _cutmix_boxes_in_torch(lam, height, width, torch.Generator().manual_seed(seed))
    assert ours.dtype == torch.int64 and ours.shape == (n, 4)
    assert torch.equal(ours, reference)


@given(seed=st.integers(0, 2**31), height=st.integers(1, 300), width=st.integers(1, 300))
def test_box_area_fraction_matches_the_torch_formula(seed: int, height: int, width: int) -> None:
    g = torch.Generator().manual_seed(seed)
    boxes = sampling.cutmix_boxes(torch.rand(50, generator=g), height, width, g)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    reference = area.to(torch.float64) / float(height * width)
    assert torch.equal(sampling.box_area_fraction(boxes, height, width), reference)
    # Other dtypes take the torch formula itself.
    assert torch.equal(sampling.box_area_fraction(boxes.int(), height, width), reference)


# The compiled Beta draws: NumPy's values, bit for bit, over the seeds the mixers draw
# ([0, 2**62)), across the range of α the loops take (tiny α reaches the logarithm branch,
# where a power underflows), and NumPy's own answer outside it.
_SEEDS = st.integers(0, 2**62 - 1) | st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**62 - 1])
_ALPHAS = (
    st.floats(1e-100, 1.0)
    | st.sampled_from([1.0, 0.2, 0.4, 1e-3, 1e-100, float.fromhex("0x1.fffffffffffffp-1")])
    | st.floats(1e-6, 1e-2)
)


@given(seed=_SEEDS)
def test_seed_words_are_numpys_seed_sequence_state(seed: int) -> None:
    from batchmix import _loops

    expected = np.random.SeedSequence(seed).generate_state(4, np.uint64)
    assert np.array_equal(_loops.seed_words(seed), expected)


_NUMPY_2_1 = pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.1.0",
    reason="the compiled draws follow NumPy 2.1+; older NumPy draws λ itself (tested below)",
)


@_NUMPY_2_1
@given(seed=_SEEDS, alpha=_ALPHAS, n=st.integers(0, 40))
def test_compiled_beta_draws_are_numpys(seed: int, alpha: float, n: int) -> None:
    expected = np.random.default_rng(seed).beta(alpha, alpha, size=n)
    values = _fast.beta_draws(alpha, n, seed)
    assert values is not None
    assert values.dtype == np.float64
    assert np.array_equal(values, expected)
    if n:
        assert _fast.beta_draw(alpha, seed) == expected[0]


@_NUMPY_2_1
def test_compiled_beta_draws_reach_the_logarithm_branch() -> None:
    """With α = 0.001 a power underflows in about half the draws; the values there are NumPy's
    too (an earlier formula, log(exp(a) + exp(b)), was a unit in the last place off)."""
    from batchmix import _loops

    seeds = range(300)
    underflows = 0
    for seed in seeds:
        expected = np.random.default_rng(seed).beta(1e-3, 1e-3, size=6)
        values = np.empty(6)
        _loops.beta_draws(seed, 1e-3, values)
        assert np.array_equal(values, expected), seed
        underflows += int(((expected > 0) & (expected < 1e-300)).sum())
    assert underflows > 0  # values below the smallest power that does not underflow


@pytest.mark.parametrize("alpha", [2.0, 1.0 + 2**-52, 1e-101, 0.0, float("nan")])
def test_compiled_beta_draws_leave_other_alphas_to_numpy(alpha: float) -> None:
    assert _fast.beta_draws(alpha, 3, 7) is None
    assert _fast.beta_draw(alpha, 7) is None


@given(seed=st.integers(0, 2**32), alpha=st.sampled_from([0.2, 1.0, 2.5, 1e-120]))
def test_beta_draws_numpys_values_with_and_without_the_loops(seed: int, alpha: float) -> None:
    a, b = _pair(seed)
    expected_seed = int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(seed)))
    expected = np.random.default_rng(expected_seed).beta(alpha, alpha, size=5)
    assert np.array_equal(sampling.beta(alpha, 5, a).numpy(), expected)
    _fast.ENABLED = False
    try:
        assert np.array_equal(sampling.beta(alpha, 5, b).numpy(), expected)
        assert torch.equal(a.get_state(), b.get_state())
    finally:
        _fast.ENABLED = True


@given(seed=st.integers(0, 2**32), high=st.integers(1, 2**62) | st.sampled_from([1, 2, 224]))
def test_randint_one_is_torch_randint(seed: int, high: int) -> None:
    a, b = _pair(seed)
    for _ in range(3):
        assert sampling.randint_one(high, a) == int(torch.randint(high, (1,), generator=b))
    assert torch.equal(a.get_state(), b.get_state())


def test_randint_one_draws_from_the_global_rng_without_a_generator() -> None:
    torch.manual_seed(3)
    first = sampling.randint_one(1000, None)
    torch.manual_seed(3)
    assert first == int(torch.randint(1000, (1,)))


def test_randint_one_keeps_a_scratch_per_thread() -> None:
    """Threads drawing at once each get their own generator's values."""
    results: dict[int, list[int]] = {}
    barrier = threading.Barrier(4)

    def draw(k: int) -> None:
        generator = torch.Generator().manual_seed(k)
        barrier.wait()
        results[k] = [sampling.randint_one(2**40, generator) for _ in range(2000)]

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(4):
        expected = torch.randint(2**40, (2000,), generator=torch.Generator().manual_seed(k))
        assert results[k] == expected.tolist()


def test_randint_one_is_unaffected_by_the_context_of_its_first_call() -> None:
    """The scratch kept for a thread is a plain CPU tensor, whatever the first call's context:
    inference mode (a validation pass before training) or a meta default device."""
    results: list[object] = []

    def draw() -> None:
        try:
            with torch.inference_mode():
                first = sampling.randint_one(100, torch.Generator().manual_seed(1))
            with torch.device("meta"):
                second = sampling.randint_one(100, torch.Generator().manual_seed(1))
            third = sampling.randint_one(100, torch.Generator().manual_seed(1))
            mix = MixUp(num_classes=4, generator=torch.Generator().manual_seed(2))
            labels = mix(torch.rand(4, 3, 8, 8), torch.arange(4))[1]
            results.extend([first, second, third, labels.device.type])
        except Exception as error:  # reported below, from the main thread
            results.append(error)

    thread = threading.Thread(target=draw)  # a fresh thread: no scratch yet
    thread.start()
    thread.join()
    expected = int(torch.randint(100, (1,), generator=torch.Generator().manual_seed(1)))
    assert results == [expected, expected, expected, "cpu"]


def test_randint_one_under_a_fake_tensor_mode_keeps_no_scratch() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    results: list[object] = []

    def draw() -> None:
        with FakeTensorMode(), pytest.raises(Exception):  # noqa: B017 (as torch.randint fails)
            sampling.randint_one(100, None)
        results.append(sampling.randint_one(100, torch.Generator().manual_seed(1)))

    thread = threading.Thread(target=draw)
    thread.start()
    thread.join()
    assert results == [int(torch.randint(100, (1,), generator=torch.Generator().manual_seed(1)))]


@pytest.mark.parametrize("compiled", [True, False])
def test_cutout_boxes_refuse_a_float_size_with_or_without_the_loops(compiled: bool) -> None:
    _fast.ENABLED = compiled
    try:
        with pytest.raises(TypeError):
            sampling.cutout_boxes(3, 16.0, 32, 32, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    finally:
        _fast.ENABLED = True


def test_compiled_beta_draws_apply_only_where_numpy_draws_the_same() -> None:
    """NumPy before 2.1 treats an underflowing power otherwise; there λ stays NumPy's own."""
    expected = np.lib.NumpyVersion(np.__version__) >= "2.1.0"
    assert _fast._NUMPY_BETA_AS_COMPILED is expected
    _fast._NUMPY_BETA_AS_COMPILED = False
    try:
        assert _fast.beta_draws(0.5, 3, 7) is None
        assert _fast.beta_draw(0.5, 7) is None
        g = torch.Generator().manual_seed(5)
        seed = int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(5)))
        assert sampling.beta_one(0.5, g) == np.random.default_rng(seed).beta(0.5, 0.5)
    finally:
        _fast._NUMPY_BETA_AS_COMPILED = expected

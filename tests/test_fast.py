"""The compiled CPU loops (batchmix._loops) give the PyTorch path's values, bit for bit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from batchmix import _fast, sampling
from batchmix import functional as F


def _both(call: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``call()`` with the compiled loops, then with the PyTorch path."""
    assert _fast.ENABLED
    compiled = call()
    _fast.ENABLED = False
    try:
        eager = call()
    finally:
        _fast.ENABLED = True
    return compiled, eager


def _index(kind: str, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "any":  # not a permutation: some rows are the partner of several rows
        return torch.randint(0, batch, (batch,), generator=g)
    return sampling.partner_index(batch, kind, g)  # type: ignore[arg-type]


def _images(batch: int, size: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 256, (batch, 3, size, size + 1), generator=g)
    if dtype.is_floating_point:
        return (levels / 255).to(dtype)
    return levels.to(dtype)


def test_numba_is_installed_and_used() -> None:
    # numba is a dependency: without it every test here would compare the fallback with itself.
    assert _fast._loops() is not None
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert _fast.mixup(images, torch.empty_like(images), torch.tensor([1, 2, 3, 0]), 0.3)
    assert _fast.copy_boxes(images, images, torch.tensor([1, 2, 3, 0]), (1, 1, 4, 4))
    assert _fast.fill_boxes(images, (1, 1, 4, 4), 0.0)


TARGETS = ["new", "inplace", "out"]


def _run(kernel: Callable[..., torch.Tensor], images: torch.Tensor, target: str, *args: object):  # type: ignore[no-untyped-def]
    def call() -> torch.Tensor:
        work = images.clone()
        out = {"new": None, "inplace": work, "out": torch.empty_like(images)}[target]
        return kernel(work, *args, out=out)

    return call


class TestMixUp:
    @given(
        batch=st.integers(1, 9),
        size=st.integers(1, 20),
        dtype=st.sampled_from([torch.uint8, torch.float32, torch.float64]),
        kind=st.sampled_from(["roll", "flip", "random", "any"]),
        per_sample=st.booleans(),
        target=st.sampled_from(TARGETS),
        seed=st.integers(0, 2**16),
    )
    def test_equals_pytorch_path(
        self,
        batch: int,
        size: int,
        dtype: torch.dtype,
        kind: str,
        per_sample: bool,
        target: str,
        seed: int,
    ) -> None:
        images = _images(batch, size, dtype, seed)
        index = _index(kind, batch, seed)
        g = torch.Generator().manual_seed(seed + 1)
        lam = torch.rand(batch, generator=g, dtype=torch.float64) if per_sample else 0.618
        compiled, eager = _both(_run(F.mixup, images, target, index, lam))
        assert torch.equal(compiled, eager)

    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
    @pytest.mark.parametrize("kind", ["roll", "random", "any"])
    def test_channels_last_in_place(self, dtype: torch.dtype, kind: str) -> None:
        images = _images(6, 12, dtype, 3)[..., :12].contiguous(memory_format=torch.channels_last)
        index = _index(kind, 6, 3)
        compiled, eager = _both(_run(F.mixup, images, "inplace", index, 0.3))
        assert torch.equal(compiled, eager)
        assert compiled.is_contiguous(memory_format=torch.channels_last)

    def test_large_in_place_batch_with_repeated_partners(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Column blocks of the scratch path: rows of 3·48·49 elements in blocks of 64 or 100.
        monkeypatch.setattr(_fast, "SCRATCH_ELEMENTS", 7000)
        images = _images(70, 48, torch.uint8, 5)
        index = _index("any", 70, 5)
        lam = torch.rand(70, dtype=torch.float64)
        compiled, eager = _both(_run(F.mixup, images, "inplace", index, lam))
        assert torch.equal(compiled, eager)

    def test_layouts_the_loops_do_not_take_fall_back(self) -> None:
        images = _images(4, 9, torch.uint8, 0)
        strided = images[..., ::2]
        assert not _fast.mixup(strided, torch.empty_like(strided), torch.tensor([1, 0, 3, 2]), 0.5)
        half = images.half()
        assert not _fast.mixup(half, torch.empty_like(half), torch.tensor([1, 0, 3, 2]), 0.5)
        out_of_range = torch.tensor([1, 0, 3, 4])
        assert not _fast.mixup(images, torch.empty_like(images), out_of_range, 0.5)
        before = images.clone()
        with pytest.raises(ValueError, match=r"mixup: expected partner indices in \[0, 4\)"):
            F.mixup(images, out_of_range, 0.5, out=images)
        assert torch.equal(images, before)


class TestBoxes:
    @given(
        batch=st.integers(1, 9),
        size=st.integers(1, 20),
        dtype=st.sampled_from(
            [torch.uint8, torch.bool, torch.float16, torch.bfloat16, torch.float32, torch.int64]
        ),
        kind=st.sampled_from(["roll", "flip", "random", "any"]),
        per_sample=st.booleans(),
        target=st.sampled_from(TARGETS),
        seed=st.integers(0, 2**16),
    )
    def test_cutmix_and_cutout_equal_pytorch_path(
        self,
        batch: int,
        size: int,
        dtype: torch.dtype,
        kind: str,
        per_sample: bool,
        target: str,
        seed: int,
    ) -> None:
        images = _images(batch, size, dtype, seed)
        index = _index(kind, batch, seed)
        g = torch.Generator().manual_seed(seed + 1)
        lam = sampling.beta(1.0, batch if per_sample else 1, g)
        boxes = sampling.cutmix_boxes(lam, size, size + 1, g)
        arg = boxes if per_sample else tuple(int(v) for v in boxes[0])
        compiled, eager = _both(_run(F.cutmix, images, target, index, arg))
        assert torch.equal(compiled, eager)
        compiled, eager = _both(_run(F.cutout, images, target, arg, 1.0))
        assert torch.equal(compiled, eager)

    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
    @pytest.mark.parametrize("step", [-1, 0, 1])
    def test_rows_either_side_of_the_short_row_length(self, dtype: torch.dtype, step: int) -> None:
        # Out of place, rows shorter than _SHORT_ROW_BYTES are copied whole and then boxed;
        # longer ones are copied around the box in one pass. Both give the PyTorch path's values,
        # and so do the contiguous samples MixCollate gathers.
        from batchmix import _loops

        width = _loops._SHORT_ROW_BYTES // dtype.itemsize + step
        height = width - 1
        images = _images(6, height, dtype, width)
        index = _index("any", 6, width)
        boxes = torch.tensor(
            [
                [0, 0, width, height],
                [1, 1, width - 2, height - 1],
                [0, 0, 0, 0],
                [2, 2, 3, 3],
                [1, 0, width, 1],
                [width - 1, 2, width, height],
            ]
        )
        box = (2, 1, width - 1, height - 2)
        # Inside the image: the loops take them (else both calls would be the PyTorch path).
        assert _fast.copy_boxes(images, torch.empty_like(images), index, boxes)
        assert _fast.fill_boxes(torch.empty_like(images), box, 3.0, source=images)
        for call in (
            lambda: F.cutmix(images, index, boxes),
            lambda: F.cutout(images, boxes, 3.0),
            lambda: F.cutmix(images, index, box),
            lambda: F.cutout(images, box, 3.0),
        ):
            compiled, eager = _both(call)
            assert torch.equal(compiled, eager)
        target = torch.empty_like(images)
        assert _fast.cutmix_gather(list(images), target, index, boxes)
        _, expected = _both(lambda: F.cutmix(images, index, boxes))
        assert torch.equal(target, expected)

    def test_large_images_in_place(self) -> None:
        images = _images(5, 130, torch.float32, 2)
        boxes = torch.tensor(
            [[0, 0, 131, 130], [3, 5, 90, 60], [0, 0, 0, 0], [7, 7, 8, 8], [50, 0, 131, 1]]
        )
        for kind in ("random", "any"):
            index = _index(kind, 5, 2)
            compiled, eager = _both(_run(F.cutmix, images, "inplace", index, boxes))
            assert torch.equal(compiled, eager)

    @pytest.mark.parametrize("value", [0.0, 0.5, 1.0, -2.0])
    def test_cutout_fill_value_is_cast_like_pytorch(self, value: float) -> None:
        for dtype in (torch.uint8, torch.float16, torch.float32, torch.int32):
            images = _images(3, 6, dtype, 1)
            boxes = torch.tensor([[0, 0, 3, 3], [1, 2, 7, 6], [2, 2, 2, 5]])
            if value < 0 and dtype == torch.uint8:
                with pytest.raises(RuntimeError, match="cannot be converted to type uint8"):
                    F.cutout(images, boxes, value)
                continue
            compiled, eager = _both(_run(F.cutout, images, "new", boxes, value))
            assert torch.equal(compiled, eager)

    def test_fill_values_that_differ_only_in_bits(self) -> None:
        # Fill values are cached by their exact bits: signed zeros and NaNs, and tensors whose
        # printed values agree, must each be written as the PyTorch path writes them.
        images = _images(2, 5, torch.float32, 3)
        values: list[object] = [
            float("nan"),
            -float("nan"),
            0.0,
            -0.0,
            torch.tensor(0.50002),
            torch.tensor(0.50001),
        ]
        for order in (values, values[::-1]):
            for value in [v for v in order for _ in range(2)]:  # twice: the last one is kept
                compiled, eager = _both(_run(F.cutout, images, "new", (1, 1, 4, 4), value))
                assert torch.equal(compiled.view(torch.int32), eager.view(torch.int32)), value
        # The object kept from the last call is looked up with its dtype.
        value = 300.5
        for dtype in (torch.float32, torch.float64, torch.int16, torch.float32):
            images = _images(2, 5, dtype, 3)
            compiled, eager = _both(_run(F.cutout, images, "new", (1, 1, 4, 4), value))
            assert torch.equal(compiled, eager), dtype

    def test_boxes_outside_the_image_are_clipped_and_negative_ones_rejected(self) -> None:
        # Bounds past the edge are clipped (as slices are) and inverted boxes are empty, on the
        # PyTorch path, where the loops leave them rather than write outside the image; negative
        # bounds (which slices would count from the end) are an error, before any write.
        images = _images(3, 8, torch.float32, 4)
        index = torch.tensor([2, 0, 1])
        for box in [(2, 2, 20, 20), (5, 5, 2, 2)]:
            assert not _fast.copy_boxes(images, images.clone(), index, box)
            compiled, eager = _both(_run(F.cutmix, images, "inplace", index, box))
            assert torch.equal(compiled, eager)
            compiled, eager = _both(_run(F.cutout, images, "new", box, 0.0))
            assert torch.equal(compiled, eager)
        clipped = F.cutout(images, (2, 2, 20, 20), 0.0)
        assert torch.equal(clipped, F.cutout(images, torch.tensor([[2, 2, 9, 8]] * 3), 0.0))
        work = images.clone()
        for box in [(-3, 0, 9, 4), torch.tensor([[0, 0, 2, 2], [0, -1, 3, 3], [1, 1, 2, 2]])]:
            with pytest.raises(ValueError, match=r"cutmix: expected .*non-negative"):
                F.cutmix(work, index, box, out=work)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=r"cutout: expected .*non-negative"):
                F.cutout(work, box, 0.0, out=work)  # type: ignore[arg-type]
        assert torch.equal(work, images)
        for bad in [(0, 0, 2), (0.0, 0, 2, 2), torch.zeros(2, 4, dtype=torch.long)]:
            with pytest.raises(ValueError, match="cutmix: expected"):
                F.cutmix(work, index, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"cutmix: expected index to hold .* shape \(3,\)"):
            F.cutmix(work, torch.tensor([0, 1]), (0, 0, 2, 2))


class TestIndexRows:
    @given(
        batch=st.integers(0, 12),
        classes=st.integers(1, 6),
        per_sample=st.booleans(),
        dtype=st.sampled_from([torch.float32, torch.float64]),
        seed=st.integers(0, 2**16),
    )
    def test_equals_pytorch_path(
        self, batch: int, classes: int, per_sample: bool, dtype: torch.dtype, seed: int
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, classes, (batch,), generator=g)  # partners often agree
        index = torch.randint(0, max(batch, 1), (batch,), generator=g)
        lam = torch.rand(batch, dtype=torch.float64, generator=g) if per_sample else 0.3
        # (An empty batch takes the PyTorch path, for its rows' strides.)
        assert (_fast.index_rows(labels, classes, index, lam, dtype) is None) == (batch == 0)
        compiled, eager = _both(lambda: F.mix_index_labels(labels, classes, index, lam, dtype))
        assert compiled.dtype == eager.dtype == dtype
        assert torch.equal(compiled, eager)

    def test_rows_are_written_whole_over_uninitialised_memory(self) -> None:
        # The rows come from np.empty: the loop itself must zero every other class.
        from batchmix import _loops

        labels, index = torch.tensor([0, 4, 1, 1]), torch.tensor([3, 0, 1, 2])
        wa = torch.tensor([0.75, 0.5, 1.0, 0.25]).numpy()
        wb = (1 - torch.tensor([0.75, 0.5, 1.0, 0.25])).numpy()
        rows = torch.full((4, 5), float("nan"))
        assert _loops.index_rows(labels.numpy(), index.numpy(), wa, wb, rows.numpy())
        expected = F.mix_labels(F.one_hot(labels, 5), index, torch.from_numpy(wa).double())
        assert torch.equal(rows, expected)
        # Invalid labels leave the memory as it was.
        stale = torch.full((4, 5), float("nan"))
        assert not _loops.index_rows(
            torch.tensor([0, 5, 1, 1]).numpy(), index.numpy(), wa, wb, stale.numpy()
        )
        assert stale.isnan().all()

    def test_labels_the_loops_do_not_take(self) -> None:
        index = torch.tensor([1, 2, 0])
        for labels in (torch.tensor([0, 5, 1]), torch.tensor([0, -1, 1])):
            assert _fast.index_rows(labels, 5, index, 0.5, torch.float32) is None
            with pytest.raises(RuntimeError, match="index"):
                F.mix_index_labels(labels, 5, index, 0.5)
        assert (
            _fast.index_rows(
                torch.tensor([0, 1, 2]), 5, torch.tensor([1, 3, 0]), 0.5, torch.float32
            )
            is None
        )
        labels = torch.tensor([0, 4, 1])
        for args in (
            (labels.int(), 5, index, 0.5, torch.float32),
            (labels, 5, index, 0.5, torch.float16),
            (
                labels,
                5,
                index,
                torch.rand(3, dtype=torch.float64, requires_grad=True),
                torch.float32,
            ),
            (labels, 5, index.int(), 0.5, torch.float32),
        ):
            assert _fast.index_rows(*args) is None  # type: ignore[arg-type]
            compiled, eager = _both(lambda args=args: F.mix_index_labels(*args).detach())
            assert torch.equal(compiled, eager)


@pytest.mark.parametrize("shape", [(0, 3, 8, 8), (2, 3, 0, 8), (2, 0, 8, 8), (2, 3, 8, 0)])
def test_empty_batches_pass_through(shape: tuple[int, ...]) -> None:
    images = torch.rand(shape)
    index = torch.arange(shape[0]).flip(0)
    per_sample = torch.zeros(shape[0], 4, dtype=torch.long)
    for result in (
        F.mixup(images, index, 0.5),
        F.cutmix(images, index, (0, 0, 0, 0)),
        F.cutmix(images, index, per_sample),
        F.cutout(images, (0, 0, 0, 0)),
        F.cutout(images, per_sample),
    ):
        assert result.shape == images.shape


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fast", [True, False], ids=["compiled", "pytorch"])
def test_in_place_cutmix_with_repeated_partners(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Index (1, 1): not a permutation; the in-place copy must read both boxes before writing.
    monkeypatch.setattr(_fast, "ENABLED", fast)
    images = torch.rand(2, 3, 224, 224)
    expected = images.clone()
    expected[0, :, :200, :200] = images[1, :, :200, :200]
    work = images.clone()
    assert torch.equal(F.cutmix(work, torch.tensor([1, 1]), (0, 0, 200, 200), out=work), expected)


class TestInputsLeftToPyTorch:
    """Inputs the loops do not take, so that the PyTorch path's own rules (and errors) apply."""

    images = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    index = torch.tensor([1, 2, 3, 0])

    @pytest.mark.parametrize(
        "lam",
        [
            torch.tensor([0.3], dtype=torch.float64),  # broadcast by the PyTorch path
            torch.tensor(0.3, dtype=torch.float64),
            torch.full((4, 1), 0.3, dtype=torch.float64),  # refused: () , (1,) or (B,) only
            torch.tensor([0.3, 0.4], dtype=torch.float64),  # too short: refused
        ],
        ids=["shape-1", "0-d", "B-by-1", "short"],
    )
    def test_lambda_tensors_not_of_shape_b(self, lam: torch.Tensor) -> None:
        assert not _fast.mixup(self.images, torch.empty_like(self.images), self.index, lam)
        try:
            expected = F.mixup(self.images.float(), self.index, lam)
        except ValueError:
            with pytest.raises(ValueError, match=r"mixup: expected lam as a number or a tensor"):
                F.mixup(self.images, self.index, lam)
            assert lam.ndim == 2 or lam.shape[0] not in (1, 4)
            return
        got = F.mixup(self.images, self.index, lam)
        assert torch.equal(got, expected.round().to(torch.uint8))

    def test_lambda_outside_the_unit_interval_for_uint8(self) -> None:
        out = torch.empty_like(self.images)
        assert not _fast.mixup(self.images, out, self.index, 1.5)
        assert not _fast.mixup(
            self.images, out, self.index, torch.tensor([0.5, 0.5, -0.1, 0.5]).double()
        )
        assert _fast.mixup(self.images.float(), out.float(), self.index, 1.5)

    def test_out_sharing_memory_with_images(self) -> None:
        work = self.images.clone()
        for out in (work[:], work.view(work.shape)):
            assert not _fast.mixup(work, out, self.index, 0.3)
            assert not _fast.copy_boxes(work, out, self.index, (1, 1, 4, 4))
        assert _fast.mixup(work, work, self.index, 0.3)

    def test_boxes_that_are_not_integers_in_the_image(self) -> None:
        work = self.images.float()
        boxes = torch.tensor([[0, 0, 3, 3]] * 4)
        for bad in (
            boxes.float() + 0.5,
            boxes.bool(),
            (0.0, 0.0, 3.0, 3.0),
            (0, 0, 3, 3, 1),
            (0, 0, 3),
            (0, 0, 2**70, 3),
        ):
            assert not _fast.copy_boxes(work, work.clone(), self.index, bad)  # type: ignore[arg-type]
            assert not _fast.fill_boxes(work, bad, 0.0)  # type: ignore[arg-type]
        assert _fast.copy_boxes(work, work.clone(), self.index, boxes.int())

    def test_negative_views_and_grad(self) -> None:
        floats = torch.rand(4, 3, 6, 6)
        negative = torch._neg_view(floats)
        assert not _fast.mixup(negative, torch.empty_like(floats), self.index, 0.3)
        grad = floats.clone().requires_grad_()
        assert not _fast.mixup(grad, torch.empty_like(floats), self.index, 0.3)
        lam = torch.rand(4, dtype=torch.float64, requires_grad=True)
        assert not _fast.mixup(floats, torch.empty_like(floats), self.index, lam)

    def test_float16_fill_that_overflows(self) -> None:
        half = torch.zeros(2, 1, 4, 4, dtype=torch.float16)
        assert not _fast.fill_boxes(half, torch.tensor([[0, 0, 2, 2]] * 2), 70000.0)


def test_loops_that_cannot_be_imported_leave_the_pytorch_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # E.g. Numba unable to place its cache (a read-only install and no writable home): the
    # import raises, and every kernel must still work.
    import importlib.abc
    import sys

    import batchmix

    class Broken(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object, target: object = None) -> None:
            if name == "batchmix._loops":
                raise RuntimeError("cannot cache function '_mix_row': no locator available")
            return None

    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, "batchmix._loops")
    monkeypatch.delattr(batchmix, "_loops")
    monkeypatch.setattr(_fast, "_module", _fast._NOT_LOADED)
    images = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    index = torch.tensor([1, 2, 3, 0])
    assert not _fast.mixup(images, torch.empty_like(images), index, 0.3)
    expected = F.mixup(images.float(), index, 0.3).round().to(torch.uint8)
    assert torch.equal(F.mixup(images, index, 0.3), expected)
    assert _fast._module is None


def _samples(
    batch: int, channels: int, dtype: torch.dtype, channels_last: bool, seed: int
) -> list[torch.Tensor]:
    """Sample images of 7×9 px, contiguous or ``(C, H, W)`` views of ``(H, W, C)`` memory."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 256, (batch, 7, 9, channels), generator=g)
    images = (levels / 255).to(dtype) if dtype.is_floating_point else levels.to(dtype)
    views = [image.permute(2, 0, 1) for image in images]
    return views if channels_last else [view.contiguous() for view in views]


class TestGather:
    """Batches built straight from the samples (MixCollate's path) equal stack-then-mix."""

    @given(
        batch=st.integers(1, 7),
        channels=st.sampled_from([1, 2, 3, 4]),
        dtype=st.sampled_from([torch.uint8, torch.float32, torch.float64]),
        channels_last=st.booleans(),
        kind=st.sampled_from(["roll", "flip", "random", "any"]),
        per_sample=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_mixup_equals_stack_then_mix(
        self,
        batch: int,
        channels: int,
        dtype: torch.dtype,
        channels_last: bool,
        kind: str,
        per_sample: bool,
        seed: int,
    ) -> None:
        samples = _samples(batch, channels, dtype, channels_last, seed)
        index = _index(kind, batch, seed)
        g = torch.Generator().manual_seed(seed + 1)
        lam = torch.rand(batch, generator=g, dtype=torch.float64) if per_sample else 0.618
        target = torch.empty((batch, *samples[0].shape), dtype=dtype)
        assert _fast.mixup_gather(samples, target, index, lam)
        _fast.ENABLED = False
        try:
            expected = F.mixup(torch.stack(samples), index, lam)
        finally:
            _fast.ENABLED = True
        assert torch.equal(target, expected)

    @given(
        batch=st.integers(1, 7),
        channels=st.sampled_from([1, 2, 3, 4]),
        dtype=st.sampled_from([torch.uint8, torch.int16, torch.float32, torch.float64]),
        channels_last=st.booleans(),
        kind=st.sampled_from(["roll", "flip", "random", "any"]),
        per_sample=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def test_cutmix_and_stack_equal_stack_then_mix(
        self,
        batch: int,
        channels: int,
        dtype: torch.dtype,
        channels_last: bool,
        kind: str,
        per_sample: bool,
        seed: int,
    ) -> None:
        samples = _samples(batch, channels, dtype, channels_last, seed)
        index = _index(kind, batch, seed)
        g = torch.Generator().manual_seed(seed + 1)
        lam = sampling.beta(1.0, batch if per_sample else 1, g)
        boxes = sampling.cutmix_boxes(lam, 7, 9, g)
        arg = boxes if per_sample else tuple(int(v) for v in boxes[0])
        target = torch.empty((batch, *samples[0].shape), dtype=dtype)
        expected = torch.stack(samples)
        # One channel: the samples are contiguous either way. Contiguous samples are left to
        # torch.stack's copy, as fast; channels-last ones are reordered by the loop.
        reordered = channels_last and channels > 1
        assert _fast.stack_gather(samples, target) == reordered
        if reordered:
            assert torch.equal(target, expected)
        target.fill_(0)
        assert _fast.cutmix_gather(samples, target, index, arg)
        _fast.ENABLED = False
        try:
            F.cutmix(expected, index, arg, out=expected)
        finally:
            _fast.ENABLED = True
        assert torch.equal(target, expected)

    def test_whole_and_edge_boxes(self) -> None:
        samples = _samples(4, 3, torch.uint8, True, 7)
        boxes = torch.tensor([[0, 0, 9, 7], [8, 6, 9, 7], [0, 3, 9, 4], [4, 0, 5, 7]])
        index = torch.tensor([3, 3, 0, 1])
        target = torch.empty(4, 3, 7, 9, dtype=torch.uint8)
        assert _fast.cutmix_gather(samples, target, index, boxes)
        expected = torch.stack(samples)
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            expected[i, :, y1:y2, x1:x2] = samples[int(index[i])][:, y1:y2, x1:x2]
        assert torch.equal(target, expected)

    def test_samples_the_loops_do_not_take(self) -> None:
        def refused(samples: list[torch.Tensor], **changes: object) -> bool:
            target = changes.get("target", torch.empty(2, 3, 7, 9))
            index = changes.get("index", torch.tensor([1, 0]))
            lam = changes.get("lam", 0.5)
            return not _fast.mixup_gather(samples, target, index, lam) and not (
                _fast.cutmix_gather(samples, target, index, (1, 1, 3, 3))
            )

        hwc = _samples(2, 3, torch.float32, True, 0)
        assert not refused(hwc)
        mixed_layouts = [hwc[0], hwc[1].contiguous()]
        assert refused(mixed_layouts)
        assert refused([hwc[0], hwc[1][:, :, :].transpose(1, 2).contiguous().transpose(1, 2)])
        assert refused([hwc[0], hwc[1].double()])
        assert refused([hwc[0], hwc[1].clone().requires_grad_()])
        assert refused([hwc[0], hwc[1].as_subclass(torch.nn.Parameter)])
        assert refused([hwc[0]])  # fewer samples than the batch
        assert refused(hwc, target=torch.empty(2, 9, 7, 3).permute(0, 3, 2, 1))
        assert refused(hwc, target=torch.empty(2, 3, 7, 9, dtype=torch.float64))
        assert refused(hwc, index=torch.tensor([1, 2]))
        zeros = [torch._efficientzerotensor((3, 7, 9)) for _ in range(2)]  # no memory behind
        assert refused(zeros)
        batch = torch.rand(2, 3, 7, 9)
        assert refused(list(batch), target=batch)  # the target is one of the samples' storage
        levels = _samples(2, 3, torch.uint8, True, 0)
        target = torch.empty(2, 3, 7, 9, dtype=torch.uint8)
        assert not _fast.mixup_gather(levels, target, torch.tensor([1, 0]), 1.5)


@pytest.mark.timeout(300)
def test_mix_collate_loads_the_loops_before_workers_fork() -> None:
    # A fresh process: the loops have no compiled versions until MixCollate is constructed, and
    # then have those of uint8 and float32 batches, which forked DataLoader workers inherit.
    import json
    import subprocess
    import sys

    script = """
import json, batchmix
from batchmix import _loops
def loaded():
    names = ("mixup", "copy_boxes", "fill_boxes", "copy_fill_boxes", "mixup_gather",
             "cutmix_gather", "index_rows", "index_inside", "boxes_inside")
    return {n: [str(s) for s in getattr(_loops, n).signatures] for n in names}
before = loaded()
batchmix.MixCollate(batchmix.MixUp(num_classes=3))
print(json.dumps([before, loaded()]))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=280
    )
    before, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(signatures == [] for signatures in before.values())
    assert any("uint8" in s for s in after["mixup"]) and any(
        "Array(float32, 2," in s for s in after["mixup"]
    )
    assert any("uint8" in s for s in after["copy_boxes"]) and any(
        "int32" in s for s in after["copy_boxes"]
    )
    assert len(after["fill_boxes"]) >= 2 and len(after["copy_fill_boxes"]) >= 2
    assert any("float32" in s for s in after["index_rows"])
    assert after["index_inside"] and after["boxes_inside"]
    for name in ("mixup_gather", "cutmix_gather"):
        assert any("uint8" in s for s in after[name]) and len(after[name]) >= 2


def test_tensors_without_memory_of_their_own_take_the_pytorch_path() -> None:
    # Under torch.vmap the kernels see batched wrappers with no storage: the loops step aside.
    images = torch.rand(3, 4, 2, 5, 5)
    out = torch.vmap(lambda t: F.cutout(t, (1, 1, 3, 3), 0.0))(images)
    assert torch.equal(out, torch.stack([F.cutout(t, (1, 1, 3, 3), 0.0) for t in images]))


@given(
    lam=st.floats(-1e38, 1e38)  # (inside float32's range: casts past it warn on both paths)
    | st.floats(0.0, 1.0)
    | st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1.0 + 2**-52]),
    weight_type=st.sampled_from([np.float32, np.float64]),
    rounding=st.booleans(),
)
def test_mixup_weights_of_a_number_are_the_casts_of_the_float64_arrays(
    lam: float, weight_type: type, rounding: bool
) -> None:
    """A Python λ skips the float64 arrays; its weights are still theirs, cast (and a uint8 λ
    outside [0, 1], NaN included, is still left to the PyTorch path)."""
    weights = _fast._mixup_weights(lam, 3, weight_type, rounding)
    tensor_weights = _fast._mixup_weights(
        torch.full((3,), lam, dtype=torch.float64), 3, weight_type, rounding
    )
    if rounding and not 0.0 <= lam <= 1.0:
        assert weights is None and tensor_weights is None
        return
    assert weights is not None and tensor_weights is not None
    lam64 = np.full(3, lam, dtype=np.float64)
    for got, via_tensor, expected in zip(
        weights,
        tensor_weights,
        (lam64.astype(weight_type), (1.0 - lam64).astype(weight_type)),
        strict=True,
    ):
        assert got.dtype == expected.dtype == via_tensor.dtype
        assert np.array_equal(got, expected, equal_nan=True)
        assert np.array_equal(via_tensor, expected, equal_nan=True)


def test_index_rows_leave_empty_batches_and_impossible_sizes_to_pytorch() -> None:
    """An empty batch gets the PyTorch path's rows (shape and strides), and a class count too
    large to allocate raises torch's error, as before the rows were allocated by NumPy."""
    empty = torch.zeros(0, dtype=torch.long)
    rows = F.mix_index_labels(empty, 5, empty, 0.3)
    _fast.ENABLED = False
    try:
        reference = F.mix_index_labels(empty, 5, empty, 0.3)
    finally:
        _fast.ENABLED = True
    assert rows.shape == reference.shape == (0, 5)
    assert rows.stride() == reference.stride()
    labels, index = torch.tensor([0, 1]), torch.tensor([1, 0])
    with pytest.raises(RuntimeError):
        F.mix_index_labels(labels, 2**62, index, 0.3)

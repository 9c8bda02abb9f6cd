"""The deterministic kernels, with pinned parameters."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from batchmix import functional as F
from batchmix import sampling

# Tolerance of a kernel's result against the float64 formula, per dtype.
TOLERANCE = {
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float32: dict(rtol=1e-6, atol=1e-6),
    torch.float16: dict(rtol=1e-2, atol=2e-3),
    torch.bfloat16: dict(rtol=2e-2, atol=1e-2),
}


def _random_index(batch_size: int, seed: int) -> torch.Tensor:
    return sampling.partner_index(batch_size, "random", torch.Generator().manual_seed(seed))


def _reference_mixup(
    images: torch.Tensor, index: torch.Tensor, lam: float | torch.Tensor
) -> torch.Tensor:
    x = images.double()
    w = lam.view(-1, *[1] * (x.ndim - 1)) if isinstance(lam, torch.Tensor) else lam
    return w * x + (1 - w) * x[index]


class TestMixUp:
    @pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
    @pytest.mark.parametrize("per_sample", [False, True], ids=["batch", "sample"])
    @pytest.mark.parametrize("target", ["new", "inplace", "out"])
    def test_equals_formula(
        self, dtype: torch.dtype, per_sample: bool, target: str, device: str
    ) -> None:
        images = torch.rand(5, 3, 7, 9, device=device).to(dtype)
        index = _random_index(5, 0)
        lam = torch.rand(5, dtype=torch.float64) if per_sample else 0.3
        expected = _reference_mixup(images, index.to(device), lam.to(device) if per_sample else lam)
        work = images.clone()
        out = {"new": None, "inplace": work, "out": torch.empty_like(images)}[target]
        result = F.mixup(work, index, lam, out=out)
        if out is not None:
            assert result.data_ptr() == out.data_ptr()
        assert result.dtype == dtype
        torch.testing.assert_close(result.double(), expected, **TOLERANCE[dtype])

    @pytest.mark.parametrize("inplace", [False, True])
    def test_uint8_rounds_to_nearest(self, inplace: bool) -> None:
        images = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8)
        index = _random_index(6, 1)
        lam = torch.rand(6, dtype=torch.float64)
        expected = _reference_mixup(images, index, lam)
        work = images.clone()
        result = F.mixup(work, index, lam, out=work if inplace else None)
        assert result.dtype == torch.uint8
        assert (result.double() - expected).abs().max() <= 0.5 + 1e-4
        assert inplace == (result.data_ptr() == work.data_ptr())

    @pytest.mark.parametrize("chunk", [None, 3 * 40 * 40 * 2])
    def test_uint8_equals_rounded_float32_mixup(
        self, chunk: int | None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The same float32 arithmetic as floating images, then rounding: uint8 MixUp is the
        # float32 MixUp of the same pixel values, rounded to the nearest level.
        if chunk is not None:
            monkeypatch.setattr(F, "_CHUNK_ELEMENTS", chunk)
        images = torch.randint(0, 256, (9, 3, 40, 40), dtype=torch.uint8)
        index, lam = _random_index(9, 4), torch.rand(9, dtype=torch.float64)
        expected = F.mixup(images.float(), index, lam).round().to(torch.uint8)
        assert torch.equal(F.mixup(images, index, lam), expected)
        work = images.clone()
        assert torch.equal(F.mixup(work, index, lam, out=work), expected)

    def test_other_integer_images_are_refused(self) -> None:
        with pytest.raises(TypeError, match="mixup: expected floating or uint8 images"):
            F.mixup(torch.zeros(2, 1, 3, 3, dtype=torch.int32), torch.tensor([1, 0]), 0.5)

    def test_large_batch_uses_chunks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(F, "_CHUNK_ELEMENTS", 64)
        images = torch.rand(9, 2, 4, 4)
        index = _random_index(9, 2)
        lam = torch.rand(9, dtype=torch.float64)
        torch.testing.assert_close(
            F.mixup(images, index, lam).double(), _reference_mixup(images, index, lam)
        )

    def test_out_with_wrong_shape(self) -> None:
        with pytest.raises(ValueError, match=r"\w+: out must match images"):
            F.mixup(torch.rand(2, 1, 3, 3), torch.tensor([1, 0]), 0.5, out=torch.empty(2, 1, 3, 4))


def _origin_check(
    images: torch.Tensor, mixed: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor
) -> None:
    """Every pixel equals the sample's own inside-out, the partner's inside the box."""
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        expected = images[i].clone()
        expected[..., y1:y2, x1:x2] = images[index[i], ..., y1:y2, x1:x2]
        assert torch.equal(mixed[i], expected)


class TestCutMix:
    @given(
        batch=st.integers(1, 6),
        height=st.integers(1, 12),
        width=st.integers(1, 12),
        seed=st.integers(0, 2**16),
        per_sample=st.booleans(),
        inplace=st.booleans(),
        loop=st.booleans(),
    )
    def test_pixels_come_from_sample_or_partner(
        self,
        batch: int,
        height: int,
        width: int,
        seed: int,
        per_sample: bool,
        inplace: bool,
        loop: bool,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        images = torch.rand(batch, 2, height, width, generator=g)
        index = sampling.partner_index(batch, "random", g)
        lam = sampling.beta(1.0, batch if per_sample else 1, g)
        boxes = sampling.cutmix_boxes(lam, height, width, g)
        boxes = boxes if per_sample else boxes.expand(batch, 4)
        arg: F.Box | torch.Tensor = boxes if per_sample else tuple(int(v) for v in boxes[0])  # type: ignore[assignment]
        work = images.clone()
        old = F._LOOP_MIN_ELEMENTS
        F._LOOP_MIN_ELEMENTS = 0 if loop else 1 << 40
        try:
            mixed = F.cutmix(work, index, arg, out=work if inplace else None)
        finally:
            F._LOOP_MIN_ELEMENTS = old
        _origin_check(images, mixed, index, boxes)
        assert inplace == (mixed.data_ptr() == work.data_ptr())

    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    def test_kernels_under_vmap_equal_a_loop(self, dtype: torch.dtype) -> None:
        # Ops with out= cannot be batched: functorch tensors take the plain-op path.
        g = torch.Generator().manual_seed(0)
        stacks = (torch.rand(3, 4, 2, 8, 8, generator=g) * 255).to(dtype)
        index = torch.tensor([3, 0, 1, 2])
        lam = torch.rand(4, generator=g, dtype=torch.float64)
        boxes = torch.tensor([[0, 0, 4, 4], [2, 2, 8, 8], [0, 0, 0, 0], [1, 3, 5, 4]])
        mask = torch.rand(4, 8, 8, generator=g) > 0.5
        order = torch.rand(4, 4, generator=g).argsort(1)
        partners = torch.tensor([[1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]])
        centres = torch.tensor([[1, 2], [4, 4], [0, 8], [8, 0]])
        kernels = {
            "mixup": lambda x: F.mixup(x, index, lam),
            "mixup-float-lam": lambda x: F.mixup(x, index, 0.3),
            "cutmix": lambda x: F.cutmix(x, index, (1, 1, 4, 4)),
            "cutmix-boxes": lambda x: F.cutmix(x, index, boxes),
            "cutout": lambda x: F.cutout(x, boxes, 7),
            "mask_mix": lambda x: F.mask_mix(x, index, mask),
            "jigsaw": lambda x: F.jigsaw(x, order, (2, 2)),
            "mosaic": lambda x: F.mosaic(x, partners, centres),
            "mosaic-one-centre": lambda x: F.mosaic(x, partners, (3, 5)),
            "resizemix": lambda x: F.resizemix(x, index, boxes),
        }
        for name, kernel in kernels.items():
            expected = torch.stack([kernel(x) for x in stacks])
            assert torch.equal(torch.vmap(kernel)(stacks), expected), name
        masks = torch.rand(3, 4, 8, 8, generator=g) > 0.5  # only the mask mapped
        expected = torch.stack([F.mask_mix(stacks[0], index, m) for m in masks])
        assert torch.equal(torch.vmap(lambda m: F.mask_mix(stacks[0], index, m))(masks), expected)

    def test_compile_without_graph_breaks(self) -> None:
        torch._dynamo.reset()

        def step(
            x: torch.Tensor, index: torch.Tensor, lam: torch.Tensor, boxes: torch.Tensor
        ) -> tuple[torch.Tensor, ...]:
            return (
                F.mixup(x, index, lam),
                F.mixup(x, index, 0.25),
                F.cutmix(x, index, boxes),
                F.cutmix(x, index, (1, 2, 5, 6)),
                F.cutout(x, boxes, 0.5),
                F.jigsaw(x, order, (2, 4)),
                F.mix_labels(F.one_hot(index, 4, smoothing=0.1), index, lam),
            )

        compiled = torch.compile(step, fullgraph=True, backend="eager")
        order = torch.rand(4, 8).argsort(1)
        index = torch.tensor([3, 0, 1, 2])
        lam = torch.rand(4, dtype=torch.float64)
        boxes = torch.tensor([[0, 0, 4, 4], [2, 2, 8, 8], [0, 0, 0, 0], [1, 3, 5, 4]])
        levels = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
        for x in (torch.rand(4, 3, 8, 8), levels):
            for got, want in zip(
                compiled(x, index, lam, boxes), step(x, index, lam, boxes), strict=True
            ):
                assert got.dtype == want.dtype
                torch.testing.assert_close(got, want, rtol=0, atol=0)


class TestCutOut:
    @pytest.mark.parametrize("loop", [False, True])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    def test_fills_boxes_only(
        self, loop: bool, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(F, "_LOOP_MIN_ELEMENTS", 0 if loop else 1 << 40)
        images = torch.randint(1, 200, (3, 2, 6, 6)).to(dtype)
        boxes = torch.tensor([[0, 0, 2, 2], [1, 2, 6, 6], [0, 0, 0, 0]])
        result = F.cutout(images, boxes, 7)
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            expected = images[i].clone()
            expected[..., y1:y2, x1:x2] = 7
            assert torch.equal(result[i], expected)


class TestLabels:
    @pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
    def test_one_hot_matches_cross_entropy_smoothing(self, smoothing: float) -> None:
        logits = torch.randn(6, 5, dtype=torch.float64)
        labels = torch.randint(0, 5, (6,))
        rows = F.one_hot(labels, 5, smoothing=smoothing, dtype=torch.float64)
        torch.testing.assert_close(rows.sum(1), torch.ones(6, dtype=torch.float64))
        ours = torch.nn.functional.cross_entropy(logits, rows)
        theirs = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
        torch.testing.assert_close(ours, theirs)

    def test_smooth_labels_matches_one_hot(self) -> None:
        labels = torch.randint(0, 7, (4,))
        plain = F.one_hot(labels, 7)
        torch.testing.assert_close(F.smooth_labels(plain, 0.2), F.one_hot(labels, 7, smoothing=0.2))

    @given(
        batch=st.integers(1, 12),
        classes=st.integers(1, 6),
        seed=st.integers(0, 2**16),
        per_sample=st.booleans(),
        dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]),
    )
    def test_mix_index_labels_equals_one_hot_then_mix(
        self, batch: int, classes: int, seed: int, per_sample: bool, dtype: torch.dtype
    ) -> None:
        generator = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, classes, (batch,), generator=generator)  # classes repeat
        index = torch.randint(0, batch, (batch,), generator=generator)
        lam: float | torch.Tensor = (
            torch.rand(batch, generator=generator, dtype=torch.float64)
            if per_sample
            else float(torch.rand(1, generator=generator))
        )
        expected = F.mix_labels(F.one_hot(labels, classes, dtype=dtype), index, lam)
        rows = F.mix_index_labels(labels, classes, index, lam, dtype=dtype)
        assert rows.dtype == dtype
        assert torch.equal(rows, expected)

    def test_box_mask(self) -> None:
        mask = F.box_mask(torch.tensor([[1, 0, 3, 2]]), 3, 4)
        expected = torch.tensor([[[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]], dtype=torch.bool)
        assert torch.equal(mask, expected)


class TestChunkedInPlace:
    """In place, rows are processed in chunks; partners overwritten earlier must be preserved."""

    @pytest.mark.parametrize("partner", ["roll", "flip", "random"])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    @pytest.mark.parametrize("chunk", [1, 48, 100, 1 << 18])
    @pytest.mark.parametrize("row_loop", [False, True], ids=["chunks", "rows"])
    def test_inplace_equals_out_of_place(
        self,
        partner: str,
        dtype: torch.dtype,
        chunk: int,
        row_loop: bool,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(F, "_CHUNK_ELEMENTS", chunk)
        monkeypatch.setattr(F, "_LOOP_MIN_ELEMENTS", 0 if row_loop else 1 << 40)
        g = torch.Generator().manual_seed(0)
        images = (torch.rand(11, 3, 4, 4, generator=g) * 255).to(dtype)
        index = sampling.partner_index(11, partner, g)  # type: ignore[arg-type]
        lam = torch.rand(11, dtype=torch.float64, generator=g)
        for kernel, arg in (
            (F.mixup, lam),
            (F.mixup, 0.3),
            (F.cutmix, (1, 0, 3, 4)),
            (F.cutmix, (0, 0, 0, 0)),
        ):
            expected = kernel(images, index, arg)  # type: ignore[operator]
            work = images.clone()
            result = kernel(work, index, arg, out=work)  # type: ignore[operator]
            assert result.data_ptr() == work.data_ptr()
            assert torch.equal(result, expected), (kernel.__name__, arg)


@pytest.mark.parametrize("kernel", ["mixup", "cutmix", "cutmix-boxes", "cutout", "mask_mix"])
def test_kernels_record_autograd_also_with_out(kernel: str) -> None:
    # Ops with out= cannot be recorded: images requiring grad take plain ops and the result is
    # copied into out; the values are those of the untracked call.
    images, index = torch.rand(3, 2, 5, 6), torch.tensor([2, 0, 1])
    calls = {
        "mixup": lambda x, **kw: F.mixup(x, index, 0.3, **kw),
        "cutmix": lambda x, **kw: F.cutmix(x, index, (1, 2, 4, 5), **kw),
        "cutmix-boxes": lambda x, **kw: F.cutmix(
            x, index, torch.tensor([[0, 0, 3, 3], [1, 1, 6, 5], [2, 0, 2, 0]]), **kw
        ),
        "cutout": lambda x, **kw: F.cutout(x, (1, 2, 4, 5), 0.5, **kw),
        "mask_mix": lambda x, **kw: F.mask_mix(x, index, torch.rand(5, 6) > 0.5, **kw),
    }
    call = calls[kernel]
    torch.manual_seed(0)
    expected = call(images)
    for out in (None, torch.empty_like(images)):
        leaf = images.clone().requires_grad_()
        torch.manual_seed(0)
        mixed = call(leaf, out=out)
        assert mixed is out or out is None
        assert mixed.requires_grad and torch.equal(mixed.detach(), expected)
        mixed.sum().backward()
        assert leaf.grad is not None
    with pytest.raises(ValueError, match=r"\w+: out must match images"):
        call(images.clone().requires_grad_(), out=torch.empty(3, 2, 5, 5))


def test_tracked_calls_keep_layout_and_uint8_ignores_lambda_grad() -> None:
    index = torch.tensor([2, 0, 1])
    images = torch.rand(3, 3, 5, 6).contiguous(memory_format=torch.channels_last)
    leaf = images.clone().requires_grad_()
    for call in (
        lambda x: F.mixup(x, index, 0.3),
        lambda x: F.cutmix(x, index, torch.tensor([[0, 0, 3, 3], [1, 1, 6, 5], [2, 0, 2, 0]])),
        lambda x: F.mask_mix(x, index, torch.ones(5, 6, dtype=torch.bool)),
    ):
        mixed = call(leaf)
        assert mixed.requires_grad and mixed.stride() == images.stride()
        assert torch.equal(mixed.detach(), call(images))
    levels = torch.randint(0, 256, (3, 2, 4, 4), dtype=torch.uint8)
    lam = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    expected = F.mixup(levels, index, lam)
    assert torch.equal(F.mixup(levels, index, lam.clone().requires_grad_()), expected)


def test_numpy_integers_in_a_box() -> None:
    import numpy as np

    images, index = torch.rand(2, 1, 6, 6), torch.tensor([1, 0])
    box = (np.int64(1), np.int32(1), 4, 4)
    expected = F.cutmix(images, index, (1, 1, 4, 4)), F.cutout(images, (1, 1, 4, 4))
    for tracked in (False, True):  # the loops, then the PyTorch path (images requiring grad)
        x = images.clone().requires_grad_(tracked)
        torch.testing.assert_close(F.cutmix(x, index, box), expected[0])  # type: ignore[arg-type]
        torch.testing.assert_close(F.cutout(x, box), expected[1])  # type: ignore[arg-type]


def test_indices_for_images_on_another_device_are_checked_before_they_move() -> None:
    # "meta" stands in for a GPU: the CPU index is range-checked before it is moved.
    images = torch.empty(2, 3, 4, 4, device="meta")
    bad = torch.tensor([5, 0])
    for call in (
        lambda: F.mixup(images, bad, 0.5),
        lambda: F.cutmix(images, bad, (0, 0, 2, 2)),
        lambda: F.mask_mix(images, bad, torch.ones(4, 4, dtype=torch.bool)),
    ):
        with pytest.raises(ValueError, match=r"expected partner indices in \[0, 2\)"):
            call()


class TestArgumentsRefusedBeforeWriting:
    """Arguments that gave wrong results or partial writes: refused, nothing written."""

    def test_out_sharing_the_images_storage(self) -> None:
        base = torch.rand(4, 3, 8, 9)
        images, out = base[..., :8], base[..., 1:]
        before = base.clone()
        index = torch.tensor([1, 2, 3, 0])
        for call in (
            lambda: F.cutmix(images, index, (1, 1, 5, 5), out=out),
            lambda: F.mixup(images, index, 0.3, out=out),
            lambda: F.cutout(images, (1, 1, 5, 5), out=out),
            lambda: F.resizemix(images, index, (1, 1, 5, 5), out=out),
            lambda: F.mosaic(images, torch.stack([index] * 3), (4, 4), out=out),
        ):
            with pytest.raises(ValueError, match="memory apart from them"):
                call()
        assert torch.equal(base, before)

    def test_uint8_mixup_needs_lambda_in_the_unit_interval(self) -> None:
        images = torch.tensor([200, 10], dtype=torch.uint8).view(2, 1, 1, 1)
        index = torch.tensor([1, 0])
        for lam in (1.5, -0.1, float("nan"), torch.tensor([0.5, 1.5], dtype=torch.float64)):
            with pytest.raises(ValueError, match=r"expected lam in \[0, 1\] for torch.uint8"):
                F.mixup(images, index, lam)
        assert F.mixup(images.float(), index, 1.5).flatten().tolist() == [295.0, -85.0]

    def test_lambda_and_index_lengths(self) -> None:
        images, index = torch.rand(4, 1, 2, 2), torch.tensor([1, 2, 3, 0])
        with pytest.raises(
            ValueError, match=r"lam as a number or a tensor of shape \(\) or \(4,\)"
        ):
            F.mixup(images, index, torch.rand(5, dtype=torch.float64))
        labels = torch.tensor([0, 1, 2, 3])
        for bad in (torch.tensor([1, 0, 1]), torch.tensor([1, 0, 3, -1])):
            with pytest.raises(ValueError, match="mix_index_labels: expected"):
                F.mix_index_labels(labels, 4, bad, 0.75)
            with pytest.raises(ValueError, match="mix_labels: expected"):
                F.mix_labels(torch.eye(4), bad, 0.75)
        with pytest.raises(ValueError, match="mix_labels_multi: expected"):
            F.mix_labels_multi(torch.eye(4), torch.tensor([[1, 0, 3]]), torch.ones(1, 3))

    def test_resizemix_and_mosaic_check_before_writing(self) -> None:
        images = torch.rand(4, 3, 8, 8)
        out = torch.zeros_like(images)
        index = torch.tensor([1, 2, 3, 0])
        with pytest.raises(ValueError, match=r"resizemix: expected boxes inside the 8×8 image"):
            F.resizemix(images, index, (4, 4, 10, 8), out=out)
        with pytest.raises(ValueError, match="resizemix: expected partner indices in"):
            F.resizemix(images, torch.tensor([1, 2, 3, -2]), torch.tensor([[0, 0, 4, 4]] * 4))
        with pytest.raises(ValueError, match="resizemix: expected a box"):
            F.resizemix(images, index, (0, 0, True, 4))
        with pytest.raises(ValueError, match=r"mosaic: expected a centre \(cx, cy\)"):
            F.mosaic(images, torch.stack([index] * 3), (-2, 3), out=out)
        with pytest.raises(ValueError, match="mosaic: expected centres in"):
            F.mosaic(images, torch.stack([index] * 3), torch.tensor([[-2, 3]] * 4))
        with pytest.raises(ValueError, match=r"mosaic: expected partners of shape \(3, 4\)"):
            F.mosaic(images, index.view(1, 4), (4, 4))
        with pytest.raises(RuntimeError):
            F.cutout(images.to(torch.uint8), (0, 0, 2, 2), value=300, out=out.to(torch.uint8))
        assert not out.any()

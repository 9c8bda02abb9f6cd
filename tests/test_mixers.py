"""ResizeMix, FMix, SaliencyMix, GridMix, Mosaic, and segmentation masks for every mixer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from torchvision import tv_tensors

import batchmix
from batchmix import MixParams, functional
from batchmix.mixers import MaskParams, MosaicParams
from batchmix.transforms import _BatchTransform

K = 10
NEW: dict[str, Callable[..., _BatchTransform]] = {
    "resizemix": batchmix.ResizeMix,
    "fmix": batchmix.FMix,
    "saliencymix": batchmix.SaliencyMix,
    "gridmix": batchmix.GridMix,
    "mosaic": batchmix.Mosaic,
}
COPYING = {k: v for k, v in NEW.items() if k != "resizemix"}  # outputs copy pixels exactly
ALL_WITH_MASKS = {
    **NEW,
    "cutmix": batchmix.CutMix,
    "mixup": batchmix.MixUp,
    "cutout": batchmix.CutOut,
}


def _seeded(
    name: str, seed: int, table: dict[str, Callable[..., _BatchTransform]] = NEW, **kwargs: Any
) -> _BatchTransform:
    return table[name](num_classes=K, generator=torch.Generator().manual_seed(seed), **kwargs)


def _params(transform: _BatchTransform, seed: int, images: torch.Tensor) -> MixParams:
    params = transform.make_params(
        images.shape[0],
        images.shape[-2],
        images.shape[-1],
        torch.Generator().manual_seed(seed),
        images=images,
    )
    assert params is not None
    return params


def _distinct(batch: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(batch * 3 * size * size, generator=g).float().view(batch, 3, size, size)


def _sources(params: MixParams, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate sources per sample ``(Q, B)`` and their expected pixel shares ``(Q, B)``."""
    own = torch.arange(batch)
    if isinstance(params, MosaicParams):
        return torch.cat([own.unsqueeze(0), params.partners]), params.weights
    lam = torch.as_tensor(params.lam, dtype=torch.float64).expand(batch)
    return torch.stack([own, params.index]), torch.stack([lam, 1 - lam])


@pytest.mark.parametrize("name", list(COPYING))
class TestPixelShares:
    @given(
        batch=st.integers(1, 6),
        size=st.integers(4, 20),
        seed=st.integers(0, 10**6),
        mode=st.sampled_from(["batch", "pair", "sample"]),
        partner=st.sampled_from(["roll", "flip", "random"]),
    )
    def test_share_of_each_source_equals_its_label_weight(
        self, name: str, batch: int, size: int, seed: int, mode: str, partner: str
    ) -> None:
        images = _distinct(batch, size, seed)
        labels = torch.arange(batch) % K
        refused = mode == "pair" and (partner == "roll" or name == "mosaic")
        if refused or (name == "mosaic" and partner == "flip"):
            with pytest.raises(
                ValueError,
                match=r"expected (partner 'flip'|mode 'batch' or 'sample'|partner 'roll' or)",
            ):
                _seeded(name, seed, mode=mode, partner=partner)
            return
        transform = _seeded(name, seed, mode=mode, partner=partner)
        mixed, rows = transform(images, labels)
        drawn = transform.make_params(
            batch, size, size, torch.Generator().manual_seed(seed), images=images
        )
        if drawn is None:  # pair mode: the odd one out alone, left unmixed
            assert mode == "pair" and batch == 1 and mixed is images
            torch.testing.assert_close(rows, TF.one_hot(labels, K).float())
            return
        params = drawn
        sources, shares = _sources(params, batch)
        torch.testing.assert_close(rows.sum(1), torch.ones(batch))
        expected_rows = torch.zeros(batch, K, dtype=torch.float64)
        for q in range(sources.shape[0]):
            expected_rows[torch.arange(batch), labels[sources[q]]] += shares[q]
        covered = torch.zeros(batch, size, size, dtype=torch.bool)
        for i in range(batch):
            for source in sources[:, i].unique().tolist():
                # Pixel values are distinct across samples, so a pixel's origin is unambiguous.
                from_source = (mixed[i] == images[source]).all(dim=0)
                covered[i] |= from_source
                expected = float(shares[:, i][sources[:, i] == source].sum())
                assert float(from_source.double().mean()) == pytest.approx(expected, abs=1e-9)
        assert bool(covered.all()), "a pixel came from none of the sources"
        torch.testing.assert_close(rows.double(), expected_rows, rtol=0, atol=1e-6)


class TestResizeMix:
    @pytest.mark.parametrize("mode", ["batch", "sample"])
    def test_pastes_resized_partner(self, mode: str) -> None:
        images = torch.rand(4, 3, 24, 24)
        transform = _seeded("resizemix", 1, mode=mode)
        mixed, _rows = transform(images, torch.arange(4))
        params = _params(transform, 1, images)
        boxes = (
            params.boxes
            if isinstance(params.boxes, torch.Tensor)
            else torch.tensor([params.boxes] * 4)
        )
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            expected = images[i].clone()
            if x2 > x1 and y2 > y1:
                patch = TF.interpolate(
                    images[params.index[i]][None],
                    size=(y2 - y1, x2 - x1),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )
                expected[:, y1:y2, x1:x2] = patch[0]
            torch.testing.assert_close(mixed[i], expected)
            share = (x2 - x1) * (y2 - y1) / 24**2
            lam = float(params.lam[i]) if isinstance(params.lam, torch.Tensor) else params.lam
            assert lam == pytest.approx(1 - share)

    def test_scale_bounds_patch_size(self) -> None:
        transform = _seeded("resizemix", 0, mode="sample", scale=(0.25, 0.5))
        params = _params(transform, 0, torch.empty(500, 1, 40, 40))
        assert isinstance(params.boxes, torch.Tensor)
        sides = params.boxes[:, 2] - params.boxes[:, 0]
        assert int(sides.min()) >= 10 and int(sides.max()) <= 20
        assert int(params.boxes[:, 2].max()) <= 40 and int(params.boxes[:, 0].min()) >= 0


class TestSaliencyMix:
    def test_box_centred_on_partner_peak(self) -> None:
        images = torch.full((2, 3, 32, 32), 0.3) + 0.02 * torch.rand(
            2, 3, 32, 32, generator=torch.Generator().manual_seed(0)
        )
        peaks = torch.tensor([[5, 7], [20, 25]])

        def saliency(batch: torch.Tensor) -> torch.Tensor:
            maps = torch.zeros(batch.shape[0], 32, 32)
            for i in range(batch.shape[0]):
                # The maps follow the image content: find which sample this is by its mean.
                j = int(torch.argmin((images.mean((1, 2, 3)) - batch[i].mean()).abs()))
                maps[i, peaks[j, 1], peaks[j, 0]] = 1.0
            return maps

        transform = batchmix.SaliencyMix(
            num_classes=K,
            mode="sample",
            saliency=saliency,
            generator=torch.Generator().manual_seed(3),
        )
        params = _params(transform, 3, images)
        assert isinstance(params.boxes, torch.Tensor)
        for i, (x1, y1, x2, y2) in enumerate(params.boxes.tolist()):
            px, py = peaks[int(params.index[i])].tolist()
            if x2 > x1:
                assert x1 <= px <= x2 and y1 <= py <= y2

    def test_spectral_residual_finds_an_object(self) -> None:
        images = 0.3 + 0.05 * torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
        images[0, :, 10:20, 30:40] = 1.0
        images[1, :, 40:50, 5:15] = 1.0
        peaks = batchmix.saliency.peak(batchmix.saliency.spectral_residual(images))
        assert 28 <= int(peaks[0, 0]) <= 41 and 8 <= int(peaks[0, 1]) <= 21
        assert 3 <= int(peaks[1, 0]) <= 16 and 38 <= int(peaks[1, 1]) <= 51

    def test_bad_saliency_output(self) -> None:
        transform = batchmix.SaliencyMix(
            num_classes=K, mode="sample", saliency=lambda x: torch.zeros(3)
        )
        with pytest.raises(
            ValueError,
            match=r"SaliencyMix: expected the saliency callable to return maps of shape \(2, 8, 8\), got \(3,\)",
        ):
            transform(torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))


class TestMaskKernels:
    def test_fmix_share_matches_lambda(self) -> None:
        lam = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        masks = batchmix.sampling.fmix_masks(lam, 16, 20, torch.Generator().manual_seed(1))
        share = masks.flatten(1).double().mean(1)
        assert float((share - (1 - lam)).abs().max()) <= 0.5 / 320 + 1e-12

    @pytest.mark.parametrize("side", [32, 33])
    def test_fmix_masks_are_isotropic_on_square_images(self, side: int) -> None:
        # Boundaries between columns and between rows are as frequent (the noise's power does
        # not depend on direction); without the √2 on the self-mirrored columns of the half
        # spectrum, column boundaries were 25% more frequent.
        lam = torch.full((400,), 0.5, dtype=torch.float64)
        masks = batchmix.sampling.fmix_masks(lam, side, side, torch.Generator().manual_seed(0))
        across_x = (masks[:, :, 1:] != masks[:, :, :-1]).double().mean()
        across_y = (masks[:, 1:, :] != masks[:, :-1, :]).double().mean()
        assert 0.92 < float(across_x / across_y) < 1.08

    def test_grid_cells_are_whole(self) -> None:
        lam = torch.full((20,), 0.5, dtype=torch.float64)
        masks = batchmix.sampling.grid_masks(
            lam, 12, 12, torch.Generator().manual_seed(0), grid=(3, 3)
        )
        cells = masks.view(20, 3, 4, 3, 4)
        assert bool((cells.all(dim=(2, 4)) | ~cells.any(dim=(2, 4))).all())
        assert bool((masks.flatten(1).sum(1) == 4 * 16).all())  # round(0.5 · 9) = 4 cells


@pytest.mark.parametrize("name", list(NEW))
class TestCommonConventions:
    @pytest.mark.parametrize("mode", ["batch", "pair", "sample"])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    def test_no_mutation_and_inplace_equal(self, name: str, mode: str, dtype: torch.dtype) -> None:
        if mode == "pair" and name == "mosaic":
            with pytest.raises(ValueError, match="Mosaic: expected mode 'batch' or 'sample'"):
                _seeded(name, 7, mode=mode, partner="flip")
            return
        images = (torch.rand(5, 3, 20, 20, generator=torch.Generator().manual_seed(0)) * 255).to(
            dtype
        )
        labels = torch.tensor([0, 1, 2, 3, 4])
        before, version = images.clone(), images._version
        kw: dict[str, Any] = {"mode": mode, "partner": "flip" if mode == "pair" else "roll"}
        mixed, rows = _seeded(name, 7, **kw)(images, labels)
        assert images._version == version and torch.equal(images, before)
        assert mixed.dtype == dtype and not torch.equal(mixed, images)
        work = images.clone()
        mixed_inplace, rows_inplace = _seeded(name, 7, inplace=True, **kw)(work, labels)
        assert mixed_inplace.data_ptr() == work.data_ptr()
        assert torch.equal(mixed_inplace, mixed) and torch.equal(rows_inplace, rows)

    @pytest.mark.parametrize("batch", [1, 3])
    def test_small_and_odd_batches(self, name: str, batch: int) -> None:
        mixed, rows = _seeded(name, 0)(torch.rand(batch, 3, 16, 16), torch.arange(batch))
        assert mixed.shape == (batch, 3, 16, 16)
        torch.testing.assert_close(rows.sum(1), torch.ones(batch))

    def test_p_zero_and_disabled(self, name: str) -> None:
        images, labels = torch.rand(4, 3, 16, 16), torch.arange(4)
        mixed, _ = _seeded(name, 0, p=0.0)(images, labels)
        assert mixed is images
        transform = _seeded(name, 0)
        transform.enabled = False
        assert transform(images, labels)[0] is images

    def test_errors(self, name: str) -> None:
        with pytest.raises(ValueError, match=f"{NEW[name].__name__}: expected p in"):
            NEW[name](p=2.0)
        with pytest.raises(ValueError, match=f"{NEW[name].__name__}: expected images of shape"):
            NEW[name](num_classes=K)(torch.rand(3, 8, 8), torch.tensor([0, 1, 2]))
        with pytest.raises(ValueError, match=f"{NEW[name].__name__}: expected class indices"):
            NEW[name](num_classes=K)(torch.rand(2, 3, 8, 8), torch.tensor([0, 10]))

    def test_inside_random_mix(self, name: str) -> None:
        mix = batchmix.RandomMix([NEW[name](num_classes=K), batchmix.CutMix(num_classes=K)])
        _, rows = mix(torch.rand(4, 3, 16, 16), torch.arange(4))
        assert rows.shape == (4, K)


@pytest.mark.parametrize("partner", ["roll", "random"])
def test_mosaic_tiles_four_different_images(partner: str) -> None:
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 8, 8).clone()
    mosaic = batchmix.Mosaic(
        num_classes=K,
        partner=partner,
        generator=torch.Generator().manual_seed(3),  # type: ignore[arg-type]
    )
    mixed, rows = mosaic(images, torch.arange(6))
    for i in range(6):
        assert len(torch.unique(mixed[i])) == 4 and int((rows[i] > 0).sum()) == 4
    with pytest.raises(
        ValueError, match=r"Mosaic: expected partner 'roll' or 'random' .* got 'flip'"
    ):
        batchmix.Mosaic(partner="flip")


class TestConstructorErrors:
    def test_ranges(self) -> None:
        with pytest.raises(ValueError, match=r"ResizeMix: expected scale to be \(lo, hi\)"):
            batchmix.ResizeMix(scale=(0.5, 0.1))
        with pytest.raises(ValueError, match=r"Mosaic: expected centre_range to be \(lo, hi\)"):
            batchmix.Mosaic(centre_range=(0.2, 1.5))
        with pytest.raises(ValueError, match=r"GridMix: expected grid to be \(lo, hi\) integers"):
            batchmix.GridMix(grid=(0, 3))
        with pytest.raises(ValueError, match="FMix: expected decay_power to be a positive number"):
            batchmix.FMix(decay_power=0)
        with pytest.raises(
            ValueError, match="SaliencyMix: expected saliency to be 'spectral' or a callable"
        ):
            batchmix.SaliencyMix(saliency="itti")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(ALL_WITH_MASKS))
class TestSegmentationMasks:
    @pytest.mark.parametrize("mode", ["batch", "sample"])
    @pytest.mark.parametrize("shape", ["BHW", "B1HW"])
    def test_mask_pixel_belongs_to_the_image_pixel_there(
        self, name: str, mode: str, shape: str
    ) -> None:
        batch, size = 5, 24
        ids = torch.arange(batch)
        # Each sample's image and mask hold its own id, so origins can be read off the output.
        images = ids.view(-1, 1, 1, 1).expand(batch, 3, size, size).float().contiguous()
        masks = ids.view(-1, 1, 1).expand(batch, size, size).to(torch.uint8).contiguous()
        if shape == "B1HW":
            masks = masks.unsqueeze(1)
        sample = {"image": images, "mask": tv_tensors.Mask(masks), "labels": ids}
        kwargs = {} if name == "cutout" else {"mode": mode}
        transform = _seeded(name, 2, ALL_WITH_MASKS, **kwargs)
        out = transform(sample)
        assert isinstance(out["mask"], tv_tensors.Mask) and out["mask"].shape == masks.shape
        out_mask = out["mask"].reshape(batch, size, size)
        if name == "mixup":
            params = _params(transform, 2, images)
            lam = torch.as_tensor(params.lam, dtype=torch.float64).expand(batch)
            heavier = torch.where(lam >= 0.5, ids, params.index)
            assert torch.equal(
                out_mask, heavier.view(-1, 1, 1).expand(batch, size, size).to(torch.uint8)
            )
        elif name == "cutout":
            assert torch.equal(out["mask"], masks)
        else:
            assert torch.equal(out_mask, out["image"][:, 0].round().to(torch.uint8))
            assert not torch.equal(out["mask"], masks)

    def test_masks_without_labels(self, name: str) -> None:
        sample = {
            "image": torch.rand(3, 3, 8, 8),
            "mask": tv_tensors.Mask(torch.zeros(3, 8, 8, dtype=torch.long)),
        }
        out = ALL_WITH_MASKS[name]()(sample)
        assert set(out) == {"image", "mask"}

    def test_mask_shape_errors(self, name: str) -> None:
        sample = {
            "image": torch.rand(3, 3, 8, 8),
            "mask": tv_tensors.Mask(torch.zeros(3, 8, 9)),
            "labels": torch.tensor([0, 1, 2]),
        }
        with pytest.raises(
            ValueError,
            match=r"expected masks matching the images' batch and size \(3, 8, 8\), got \(3, 8, 9\)",
        ):
            ALL_WITH_MASKS[name](num_classes=K)(sample)


def test_mask_params_types() -> None:
    params = _params(_seeded("fmix", 0, mode="sample"), 0, torch.empty(3, 1, 8, 8))
    assert isinstance(params, MaskParams) and params.mask.shape == (3, 8, 8)


def test_mix_labels_multi() -> None:
    rows = torch.eye(4)
    indices = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    weights = torch.tensor([[0.25] * 4, [0.75] * 4], dtype=torch.float64)
    mixed = functional.mix_labels_multi(rows, indices, weights)
    torch.testing.assert_close(mixed[0], torch.tensor([0.25, 0.75, 0.0, 0.0]))


def _tiles(image: torch.Tensor, grid: tuple[int, int]) -> list[torch.Tensor]:
    """The tiles of one ``(..., H, W)`` image, row by row."""
    rows, cols = grid
    th, tw = image.shape[-2] // rows, image.shape[-1] // cols
    return [
        image[..., r * th : (r + 1) * th, c * tw : (c + 1) * tw]
        for r in range(rows)
        for c in range(cols)
    ]


class TestJigsaw:
    @given(
        batch=st.integers(1, 5),
        grid=st.tuples(st.integers(1, 3), st.integers(1, 3)).filter(lambda g: g[0] * g[1] > 1),
        tile=st.tuples(st.integers(1, 4), st.integers(1, 4)),
        seed=st.integers(0, 10**6),
        p=st.sampled_from([1.0, 0.5]),
        dtype=st.sampled_from([torch.float32, torch.uint8]),
    )
    def test_each_sample_gets_a_new_order_of_its_own_tiles(
        self,
        batch: int,
        grid: tuple[int, int],
        tile: tuple[int, int],
        seed: int,
        p: float,
        dtype: torch.dtype,
    ) -> None:
        size = (grid[0] * tile[0], grid[1] * tile[1])
        images = torch.randperm(batch * 2 * size[0] * size[1]).view(batch, 2, *size)
        images = (images % 251).to(dtype) if dtype == torch.uint8 else images.to(dtype)
        transform = batchmix.Jigsaw(
            grid=grid, num_classes=K, p=p, generator=torch.Generator().manual_seed(seed)
        )
        labels = torch.arange(batch) % K
        mixed, rows = transform(images, labels)
        params = _params(transform, seed, images) if p == 1.0 else None
        assert torch.equal(rows, TF.one_hot(labels, K).float())
        tiles = grid[0] * grid[1]
        for i in range(batch):
            before, after = _tiles(images[i], grid), _tiles(mixed[i], grid)
            for t in range(tiles):
                assert any(torch.equal(after[t], before[s]) for s in range(tiles)), (
                    "an output tile is none of the sample's tiles"
                )
            if params is not None:
                expected = params.order[i].tolist()  # type: ignore[attr-defined]
                assert sorted(expected) == list(range(tiles))
                assert expected != list(range(tiles))  # never the image itself
                assert all(torch.equal(after[t], before[expected[t]]) for t in range(tiles))

    def test_orders_are_uniform_over_the_new_ones(self) -> None:
        transform = batchmix.Jigsaw(grid=(2, 2), generator=torch.Generator().manual_seed(0))
        params = transform.make_params(4600, 4, 4, torch.Generator().manual_seed(0))
        assert params is not None
        seen: dict[tuple[int, ...], int] = {}
        for row in params.order.tolist():  # type: ignore[attr-defined]
            seen[tuple(row)] = seen.get(tuple(row), 0) + 1
        assert (0, 1, 2, 3) not in seen and len(seen) == 23
        assert min(seen.values()) > 140 and max(seen.values()) < 260  # 200 expected each
        two = batchmix.Jigsaw(grid=(1, 2)).make_params(50, 2, 2, torch.Generator().manual_seed(1))
        assert two is not None and two.order.tolist() == [[1, 0]] * 50  # type: ignore[attr-defined]

    def test_masks_follow_their_tiles_and_inplace_is_equal(self) -> None:
        ids = torch.arange(3 * 8 * 8).view(3, 8, 8)
        images = ids.unsqueeze(1).expand(3, 3, 8, 8).float().contiguous()
        sample = {"image": images, "mask": tv_tensors.Mask(ids.clone()), "labels": torch.arange(3)}
        out = batchmix.Jigsaw(grid=(2, 4), generator=torch.Generator().manual_seed(5))(sample)
        assert isinstance(out["mask"], tv_tensors.Mask)
        assert torch.equal(out["mask"].float(), out["image"][:, 0])
        assert not torch.equal(out["image"], images)
        work = images.clone().contiguous(memory_format=torch.channels_last)
        again = batchmix.Jigsaw(
            grid=(2, 4), inplace=True, generator=torch.Generator().manual_seed(5)
        )(work, torch.arange(3))[0]
        assert again.data_ptr() == work.data_ptr() and torch.equal(again, out["image"])

    def test_gradients_and_labels(self) -> None:
        images = torch.rand(2, 3, 4, 4, requires_grad=True)
        mixed = batchmix.Jigsaw(grid=(2, 2))(images)
        (mixed * torch.arange(mixed.numel()).view_as(mixed)).sum().backward()
        assert images.grad is not None and sorted(images.grad.flatten().tolist()) == list(
            map(float, range(images.numel()))
        )
        labels = torch.tensor([1, 2])
        assert batchmix.Jigsaw(grid=(2, 2))(images.detach(), labels)[1] is labels
        _, rows = batchmix.RandomMix(
            [batchmix.Jigsaw(grid=(2, 2), num_classes=K), batchmix.CutMix(num_classes=K)]
        )(images.detach(), labels)
        assert rows.shape == (2, K)

    def test_errors(self) -> None:
        for grid in [(1, 1), (0, 2), (2,), (2.0, 2), "2x2"]:
            with pytest.raises(ValueError, match="Jigsaw: expected grid to be"):
                batchmix.Jigsaw(grid=grid)  # type: ignore[arg-type]
        images = torch.rand(2, 3, 6, 8)
        before = images.clone()
        with pytest.raises(ValueError, match="Jigsaw: expected the image height divisible by 4"):
            batchmix.Jigsaw(grid=(4, 4), inplace=True)(images)
        assert torch.equal(images, before)
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor([[0, 0, 2, 2]]), format="XYXY", canvas_size=(6, 8)
        )
        targets = [{"boxes": boxes, "labels": torch.tensor([1])}] * 2
        with pytest.raises(ValueError, match="Jigsaw: expected no bounding boxes"):
            batchmix.Jigsaw(grid=(2, 2))(images, targets)
        with pytest.raises(ValueError, match=r"jigsaw: expected order to hold integer tile"):
            functional.jigsaw(images, torch.zeros(2, 3, dtype=torch.long), (2, 2))
        with pytest.raises(ValueError, match=r"jigsaw: expected tile indices in \[0, 4\)"):
            functional.jigsaw(images, torch.full((2, 4), 4), (2, 2))


def _segmented(batch: int, size: int, classes: int, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, classes, (batch, size, size), generator=g)
    images = torch.rand(batch, 3, size, size, generator=g)
    return {"image": images, "mask": tv_tensors.Mask(masks), "labels": torch.arange(batch) % K}


class TestTransplantation:
    @given(
        batch=st.integers(1, 6),
        size=st.integers(1, 9),
        classes=st.integers(1, 4),
        seed=st.integers(0, 10**6),
        partner=st.sampled_from(["roll", "flip", "random"]),
        excluded=st.sampled_from([(), (0,), (0, 2)]),
    )
    def test_one_class_of_the_partner_moves_with_its_pixels(
        self,
        batch: int,
        size: int,
        classes: int,
        seed: int,
        partner: str,
        excluded: tuple[int, ...],
    ) -> None:
        sample = _segmented(batch, size, classes, seed)
        images, masks = sample["image"], sample["mask"]
        transform = batchmix.Transplantation(
            excluded_labels=excluded,
            num_classes=K,
            partner=partner,  # type: ignore[arg-type]
            generator=torch.Generator().manual_seed(seed),
        )
        out = transform(sample)
        params = transform.make_params(
            batch, size, size, torch.Generator().manual_seed(seed), masks=masks
        )
        if params is None:  # no partner holds an eligible class: the input comes back
            assert out["image"] is images and out["mask"] is masks
            for j in range(batch):  # every sample is some sample's partner (p = 1)
                assert all(c in excluded for c in masks[j].unique().tolist())
            return
        index, region = params.index, params.mask  # type: ignore[attr-defined]
        for i, j in enumerate(index.tolist()):
            eligible = [c for c in masks[j].unique().tolist() if c not in excluded]
            if not eligible:
                assert not bool(region[i].any())
            else:
                taken = [c for c in eligible if torch.equal(region[i], masks[j] == c)]
                assert len(taken) == 1, "the region is not one eligible class of the partner"
            assert torch.equal(out["image"][i], torch.where(region[i], images[j], images[i]))
            assert torch.equal(out["mask"][i], torch.where(region[i], masks[j], masks[i]))
            share = float(region[i].double().mean())
            expected = torch.zeros(K, dtype=torch.float64)
            expected[int(sample["labels"][i])] += 1 - share
            expected[int(sample["labels"][j])] += share
            torch.testing.assert_close(out["labels"][i].double(), expected, rtol=0, atol=1e-6)
        assert isinstance(out["mask"], tv_tensors.Mask)

    def test_donor_is_the_previous_sample_and_classes_are_drawn_uniformly(self) -> None:
        masks = torch.zeros(2, 4, 4, dtype=torch.long)
        masks[0, :, :2], masks[0, :, 2:] = 1, 2  # sample 0 holds classes 1 and 2, sample 1 only 0
        images = torch.stack([torch.ones(3, 4, 4), torch.zeros(3, 4, 4)])
        transform = batchmix.Transplantation(
            excluded_labels=(0,), generator=torch.Generator().manual_seed(0)
        )
        counts = {1: 0, 2: 0}
        for _ in range(400):
            out = transform({"image": images, "mask": tv_tensors.Mask(masks)})
            assert torch.equal(out["image"][0], images[0])  # its donor has no eligible class
            taken = out["mask"][1].unique().tolist()
            assert taken in ([0, 1], [0, 2])
            counts[taken[1]] += 1
            assert torch.equal(out["image"][1][0] == 1, out["mask"][1] != 0)
        assert 160 < counts[1] < 240

    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    def test_inplace_collate_and_mask_shapes(self, dtype: torch.dtype) -> None:
        sample = _segmented(4, 8, 3, 1)
        sample["image"] = (sample["image"] * 255).to(dtype)
        sample["extra"] = tv_tensors.Mask(sample["mask"].unsqueeze(1) * 10)  # (B, 1, H, W)

        def make(**kw: Any) -> batchmix.Transplantation:
            return batchmix.Transplantation(
                num_classes=K, generator=torch.Generator().manual_seed(3), **kw
            )

        expected = make()(sample)
        assert torch.equal(expected["extra"][:, 0], expected["mask"] * 10)  # follows the first
        work = {k: v.clone() for k, v in sample.items()}
        got = make(inplace=True)(work)
        assert got["image"].data_ptr() == work["image"].data_ptr()
        assert all(torch.equal(got[k], expected[k]) for k in expected)
        samples = [
            {
                k: type(v)(v[i]) if isinstance(v, tv_tensors.Mask) else v[i]
                for k, v in sample.items()
            }
            for i in range(4)
        ]

        collated = batchmix.MixCollate(make())(samples)  # masks stay masks in the batch
        assert all(torch.equal(collated[k], expected[k]) for k in expected)

    def test_mask_types_and_excluded_labels(self) -> None:
        images = torch.rand(3, 3, 4, 4)
        bools = torch.zeros(3, 4, 4, dtype=torch.bool)
        bools[:, :, 2:] = True
        # bool masks: classes False and True; excluding 0 leaves the True part to move.
        transform = batchmix.Transplantation(
            excluded_labels={0}, generator=torch.Generator().manual_seed(0)
        )
        out = transform({"image": images, "mask": tv_tensors.Mask(bools)})
        assert torch.equal(out["image"][:, :, :, 2:], images[[2, 0, 1]][:, :, :, 2:])
        assert torch.equal(out["image"][:, :, :, :2], images[:, :, :, :2])
        # Excluded ids outside the masks' dtype neither crash nor wrap around (−1 is not 255).
        only_255 = torch.full((3, 4, 4), 255, dtype=torch.uint8)
        for excluded in [(-1,), (300, 1000), torch.tensor([-1, 300])]:
            out = batchmix.Transplantation(excluded_labels=excluded)(
                {"image": images, "mask": tv_tensors.Mask(only_255)}
            )
            assert torch.equal(out["image"], images[[2, 0, 1]])
        # Wider spans of ids and negative ids (counted per donor) and sparse ids (instance
        # ids, sorted): the same rule holds.
        for background, instance in [(0, 5000), (-3, 7), (0, 1_000_000)]:
            ids = torch.full((3, 4, 4), background, dtype=torch.long)
            ids[:, :2] = instance
            out = batchmix.Transplantation(excluded_labels=torch.tensor([background]))(
                {"image": images, "mask": tv_tensors.Mask(ids)}
            )
            assert torch.equal(out["image"][:, :, :2], images[[2, 0, 1]][:, :, :2])
            assert torch.equal(out["image"][:, :, 2:], images[:, :, 2:])
        # kornia's call form: (images, masks).
        mixed, mask_out = batchmix.Transplantation()(images, tv_tensors.Mask(ids))
        assert isinstance(mask_out, tv_tensors.Mask) and mixed.shape == images.shape

    def test_errors(self) -> None:
        images = torch.rand(2, 3, 4, 4)
        with pytest.raises(ValueError, match="RandomMix: expected members that work without masks"):
            batchmix.RandomMix([batchmix.Transplantation(), batchmix.CutOut()], mode="sample")
        with pytest.raises(ValueError, match="Transplantation: expected segmentation masks"):
            batchmix.Transplantation()(images)
        float_masks = tv_tensors.Mask(torch.zeros(2, 4, 4))
        with pytest.raises(ValueError, match="Transplantation: expected integer or bool class"):
            batchmix.Transplantation()({"image": images, "mask": float_masks})
        for bad in [(0.5,), 3, "0", torch.tensor([0.5]), (True,)]:
            with pytest.raises(ValueError, match="Transplantation: expected excluded_labels"):
                batchmix.Transplantation(excluded_labels=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="Transplantation: expected partner to be one of"):
            batchmix.Transplantation(partner="next")  # type: ignore[arg-type]
        assert "excluded_labels=(0,)" in repr(batchmix.Transplantation(excluded_labels=[0]))

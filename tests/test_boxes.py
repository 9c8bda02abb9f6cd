"""Detection boxes follow their pixels: CutMix, SaliencyMix, ResizeMix, Mosaic, MixUp."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torchvision import tv_tensors

import batchmix
from batchmix import boxes as B

SIZE = 32


def _targets(batch: int, seed: int, fmt: str = "XYXY") -> list[dict[str, Any]]:
    """Random integer boxes; each box's label encodes (sample, box number) as 100·i + k."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(batch):
        n = int(torch.randint(1, 5, (1,), generator=g))
        x1 = torch.randint(0, SIZE - 4, (n,), generator=g)
        y1 = torch.randint(0, SIZE - 4, (n,), generator=g)
        w = torch.randint(2, 12, (n,), generator=g)
        h = torch.randint(2, 12, (n,), generator=g)
        xyxy = torch.stack([x1, y1, (x1 + w).clamp(max=SIZE), (y1 + h).clamp(max=SIZE)], 1).float()
        boxes = tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=(SIZE, SIZE))
        if fmt != "XYXY":
            from torchvision.transforms.v2 import functional as TF

            boxes = TF.convert_bounding_box_format(boxes, new_format=fmt)
        out.append(
            {"boxes": boxes, "labels": 100 * i + torch.arange(n), "image_id": torch.tensor(i)}
        )
    return out


def _batch(batch: int, seed: int, fmt: str = "XYXY") -> tuple[torch.Tensor, list[dict[str, Any]]]:
    # Each sample's pixels hold its index, so each output pixel's origin can be read back.
    images = torch.arange(batch).float().view(-1, 1, 1, 1).expand(batch, 3, SIZE, SIZE).contiguous()
    return images, _targets(batch, seed, fmt)


def _xyxy(boxes: tv_tensors.BoundingBoxes) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return (
        TF.convert_bounding_box_format(boxes, new_format="XYXY").as_subclass(torch.Tensor).double()
    )


def _check_pasting(
    transform: Any, seed: int, images: torch.Tensor, targets: list[dict[str, Any]], exact: bool
) -> None:
    out_images, out_targets = transform(images, targets)
    params = transform.make_params(
        images.shape[0], SIZE, SIZE, torch.Generator().manual_seed(seed), images=images
    )
    index = params.index if params is not None else torch.arange(images.shape[0])
    threshold = transform.min_box_visibility
    origin = out_images[:, 0].round().long()
    for i, (before, after) in enumerate(zip(targets, out_targets, strict=True)):
        assert set(after) == {"boxes", "labels", "image_id", "weights"}
        assert after["boxes"].format == before["boxes"].format
        assert torch.equal(after["image_id"], before["image_id"])
        kept = {int(label) for label in after["labels"]}
        assert after["labels"].shape[0] == after["boxes"].shape[0] == after["weights"].shape[0]
        for box, label in zip(_xyxy(after["boxes"]), after["labels"].tolist(), strict=True):
            source = label // 100
            x1, y1, x2, y2 = (round(v) for v in box.tolist())
            assert x2 > x1 and y2 > y1
            region = origin[i, y1:y2, x1:x2]
            # The box frames pixels of the image it came from.
            share = float((region == source).double().mean())
            if source != i:
                assert share == 1.0 or (not exact and share > 0.9)
            else:
                assert share >= threshold - 1e-9
        # Visibility rule for the sample's own boxes: kept exactly when enough stays visible.
        if exact and int(index[i]) != i:
            for box, label in zip(_xyxy(before["boxes"]), before["labels"].tolist(), strict=True):
                x1, y1, x2, y2 = (int(v) for v in box.tolist())
                visible = float((origin[i, y1:y2, x1:x2] == i).double().mean())
                assert (label in kept) == (visible >= threshold), (label, visible)


class TestCutMixBoxes:
    @given(
        batch=st.integers(1, 5),
        seed=st.integers(0, 10**5),
        mode=st.sampled_from(["batch", "sample"]),
    )
    def test_boxes_follow_pixels(self, batch: int, seed: int, mode: str) -> None:
        images, targets = _batch(batch, seed)
        transform = batchmix.CutMix(mode=mode, generator=torch.Generator().manual_seed(seed))
        _check_pasting(transform, seed, images, targets, exact=True)

    @pytest.mark.parametrize("fmt", ["XYWH", "CXCYWH"])
    def test_formats_round_trip(self, fmt: str) -> None:
        images, targets = _batch(4, 0, fmt)
        _out_images, out_targets = batchmix.CutMix(p=0.0)(images, targets)
        for before, after in zip(targets, out_targets, strict=True):
            assert after["boxes"].format == before["boxes"].format
            torch.testing.assert_close(after["boxes"], before["boxes"])
            assert bool((after["weights"] == 1).all())

    def test_saliencymix_boxes_follow_pixels(self) -> None:
        images, targets = _batch(4, 3)
        images = images + 0.01 * torch.rand(
            images.shape, generator=torch.Generator().manual_seed(0)
        )
        transform = batchmix.SaliencyMix(mode="sample", generator=torch.Generator().manual_seed(1))
        _check_pasting(transform, 1, images, targets, exact=True)


class TestResizeMixBoxes:
    @pytest.mark.parametrize("mode", ["batch", "sample"])
    def test_partner_boxes_scaled_into_the_paste(self, mode: str) -> None:
        images, targets = _batch(5, 4)
        transform = batchmix.ResizeMix(mode=mode, generator=torch.Generator().manual_seed(2))
        _, out_targets = transform(images, targets)
        params = transform.make_params(5, SIZE, SIZE, torch.Generator().manual_seed(2))
        assert params is not None
        for i, after in enumerate(out_targets):
            px1, py1, px2, py2 = params.box(i)
            j = int(params.index[i])
            scale = ((px2 - px1) / SIZE, (py2 - py1) / SIZE)
            for box, label in zip(_xyxy(after["boxes"]), after["labels"].tolist(), strict=True):
                if label // 100 != i or j == i:
                    assert px1 - 1e-6 <= box[0] <= box[2] <= px2 + 1e-6
                    assert py1 - 1e-6 <= box[1] <= box[3] <= py2 + 1e-6
                    original = _xyxy(targets[label // 100]["boxes"])[label % 100]
                    expected = original * torch.tensor(
                        [scale[0], scale[1]] * 2, dtype=torch.float64
                    ) + torch.tensor([px1, py1, px1, py1], dtype=torch.float64)
                    torch.testing.assert_close(box, expected)


class TestMosaicBoxes:
    @given(
        batch=st.integers(1, 6),
        seed=st.integers(0, 10**5),
        mode=st.sampled_from(["batch", "sample"]),
    )
    def test_boxes_inside_their_tile(self, batch: int, seed: int, mode: str) -> None:
        images, targets = _batch(batch, seed)
        transform = batchmix.Mosaic(mode=mode, generator=torch.Generator().manual_seed(seed))
        out_images, out_targets = transform(images, targets)
        origin = out_images[:, 0].round().long()
        for i, after in enumerate(out_targets):
            for box, label in zip(_xyxy(after["boxes"]), after["labels"].tolist(), strict=True):
                x1, y1, x2, y2 = (int(v) for v in box.tolist())
                assert bool((origin[i, y1:y2, x1:x2] == label // 100).all())
                original = _xyxy(targets[label // 100]["boxes"])[label % 100]
                kept_share = (
                    (x2 - x1)
                    * (y2 - y1)
                    / float((original[2] - original[0]) * (original[3] - original[1]))
                )
                assert kept_share >= transform.min_box_visibility - 1e-9


class TestMixUpBoxes:
    def test_union_with_weights(self) -> None:
        images, targets = _batch(4, 5)
        transform = batchmix.MixUp(mode="sample", generator=torch.Generator().manual_seed(0))
        _, out_targets = transform(images, targets)
        params = transform.make_params(4, SIZE, SIZE, torch.Generator().manual_seed(0))
        assert params is not None
        for i, after in enumerate(out_targets):
            j = int(params.index[i])
            n_own, n_partner = targets[i]["boxes"].shape[0], targets[j]["boxes"].shape[0]
            assert after["boxes"].shape[0] == n_own + n_partner
            torch.testing.assert_close(after["boxes"][:n_own], targets[i]["boxes"])
            torch.testing.assert_close(after["boxes"][n_own:], targets[j]["boxes"])
            lam = params.weight(i)
            expected = torch.tensor([lam] * n_own + [1 - lam] * n_partner, dtype=torch.float32)
            torch.testing.assert_close(after["weights"], expected)
            assert torch.equal(
                after["labels"], torch.cat([targets[i]["labels"], targets[j]["labels"]])
            )


class TestOtherStructures:
    def test_plain_list_of_boxes_and_image_labels(self) -> None:
        images, targets = _batch(3, 0)
        boxes = [t["boxes"] for t in targets]
        out = batchmix.CutMix(num_classes=5)(
            {"image": images, "labels": torch.tensor([0, 1, 2]), "boxes": boxes}
        )
        assert out["labels"].shape == (3, 5)
        assert all(isinstance(b, tv_tensors.BoundingBoxes) for b in out["boxes"])

    def test_cutout_passes_boxes_through(self) -> None:
        images, targets = _batch(3, 0)
        _, out_targets = batchmix.CutOut(size=8)(images, targets)
        for before, after in zip(targets, out_targets, strict=True):
            torch.testing.assert_close(after["boxes"], before["boxes"])

    @pytest.mark.parametrize("factory", [batchmix.FMix, batchmix.GridMix])
    def test_mask_mixers_reject_boxes(self, factory: Any) -> None:
        images, targets = _batch(3, 0)
        before = images.clone()
        with pytest.raises(ValueError, match=f"{factory.__name__}: expected no bounding boxes"):
            factory(inplace=True)(images, targets)
        assert torch.equal(images, before)

    def test_wrong_number_of_targets(self) -> None:
        images, targets = _batch(3, 0)
        with pytest.raises(
            ValueError, match=r"expected one detection target per sample .*, got 2 for a batch of 3"
        ):
            batchmix.CutMix()(images, targets[:2])

    def test_canvas_size_mismatch(self) -> None:
        images, targets = _batch(2, 0)
        targets[1]["boxes"] = tv_tensors.BoundingBoxes(
            targets[1]["boxes"], format="XYXY", canvas_size=(16, 16)
        )
        with pytest.raises(ValueError, match=r"expected BoundingBoxes with canvas_size \(32, 32\)"):
            batchmix.CutMix()(images, targets)

    def test_mismatched_per_box_entries(self) -> None:
        images, targets = _batch(2, 0)
        targets[1]["area"] = torch.ones(targets[1]["boxes"].shape[0])
        before = images.clone()
        with pytest.raises(ValueError, match=r"MixUp: expected the detection entry 'area'"):
            batchmix.MixUp(inplace=True)(images, targets)
        assert torch.equal(images, before)  # raised before anything was mixed

    def test_per_box_entries_of_other_shapes_or_dtypes(self) -> None:
        images, targets = _batch(2, 0)
        targets[0]["labels"] = targets[0]["labels"].float()
        before = images.clone()
        with pytest.raises(ValueError, match=r"CutMix: expected the per-box entry 'labels'"):
            batchmix.CutMix(inplace=True)(images, targets)
        assert torch.equal(images, before)

    @pytest.mark.parametrize("counts", [(1, 1, 1), (1, 2, 3)])
    @pytest.mark.parametrize("factory", [batchmix.MixUp, batchmix.CutMix, batchmix.Mosaic])
    def test_image_ids_of_shape_one_stay_per_image(self, counts: Any, factory: Any) -> None:
        # torchvision's detection datasets give image_id as a (1,) tensor; with one box it has
        # the box count as first dimension, yet it names the image.
        images = torch.rand(3, 3, SIZE, SIZE)
        targets = [
            {
                "boxes": tv_tensors.BoundingBoxes(
                    torch.tensor([[2.0, 2.0, 20.0, 20.0]] * n),
                    format="XYXY",
                    canvas_size=(SIZE, SIZE),
                ),
                "labels": torch.arange(n),
                "image_id": torch.tensor([10 + i]),
            }
            for i, n in enumerate(counts)
        ]
        _, out = factory(generator=torch.Generator().manual_seed(0))(images, targets)
        for i, target in enumerate(out):
            assert torch.equal(target["image_id"], torch.tensor([10 + i]))
            assert target["labels"].shape[0] == target["boxes"].shape[0]

    @pytest.mark.parametrize("counts", [(2, 3, 1), (2, 2, 2)])
    @pytest.mark.parametrize("factory", [batchmix.MixUp, batchmix.CutMix, batchmix.CutOut])
    def test_entries_that_describe_the_image(self, counts: Any, factory: Any) -> None:
        # image_size is per-image by name; "source" is not per-box in every target (with
        # counts 2, 3, 1), so it stays with its sample; CutOut leaves targets alone anyway.
        images = torch.rand(3, 3, SIZE, SIZE)
        targets = [
            {
                "boxes": tv_tensors.BoundingBoxes(
                    torch.tensor([[2.0, 2.0, 20.0, 20.0]] * n),
                    format="XYXY",
                    canvas_size=(SIZE, SIZE),
                ),
                "labels": torch.arange(n),
                "image_size": torch.tensor([SIZE, SIZE]),
                "source": torch.tensor([7, i]),
            }
            for i, n in enumerate(counts)
        ]
        _, out = factory(generator=torch.Generator().manual_seed(0))(images, targets)
        for i, target in enumerate(out):
            assert torch.equal(target["image_size"], torch.tensor([SIZE, SIZE]))
            if len(set(counts)) > 1:
                assert torch.equal(target["source"], torch.tensor([7, i]))
            assert target["labels"].shape[0] == target["boxes"].shape[0]

    def test_instance_masks_in_targets_are_refused_clearly(self) -> None:
        images, targets = _batch(2, 0)
        for target in targets:
            count = target["boxes"].shape[0]
            target["masks"] = tv_tensors.Mask(torch.zeros(count, SIZE, SIZE, dtype=torch.uint8))
        before = images.clone()
        with pytest.raises(ValueError, match="CutMix: expected detection targets without instance"):
            batchmix.CutMix(inplace=True)(images, targets)
        assert torch.equal(images, before)
        _, out = batchmix.CutOut(size=4)(images, targets)  # passed through as they are
        assert out[0]["masks"] is targets[0]["masks"]


class TestMixUpBoxesNotInTheImage:
    def test_unmixed_samples_keep_only_their_boxes(self) -> None:
        images, targets = _batch(6, 3)
        transform = batchmix.MixUp(mode="sample", p=0.5, generator=torch.Generator().manual_seed(1))
        _, out = transform(images, targets)
        params = transform.make_params(6, SIZE, SIZE, torch.Generator().manual_seed(1))
        assert params is not None
        unmixed = [i for i in range(6) if params.weight(i) == 1.0]
        assert unmixed and len(unmixed) < 6  # both kinds occur with this seed
        for i in unmixed:
            torch.testing.assert_close(out[i]["boxes"], targets[i]["boxes"])
            assert torch.equal(out[i]["weights"], torch.ones(targets[i]["boxes"].shape[0]))

    def test_a_sample_paired_with_itself_keeps_its_boxes(self) -> None:
        images, targets = _batch(1, 4)
        _, out = batchmix.MixUp(generator=torch.Generator().manual_seed(0))(images, targets)
        torch.testing.assert_close(out[0]["boxes"], targets[0]["boxes"])
        assert torch.equal(out[0]["labels"], targets[0]["labels"])
        assert torch.equal(out[0]["weights"], torch.ones(targets[0]["boxes"].shape[0]))


class TestGeometry:
    def test_clip_to(self) -> None:
        boxes = torch.tensor(
            [[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]], dtype=torch.float64
        )
        clipped, share = B.clip_to(boxes, (5.0, 0.0, 40.0, 40.0))
        torch.testing.assert_close(
            clipped[0], torch.tensor([5.0, 0.0, 10.0, 10.0], dtype=torch.float64)
        )
        torch.testing.assert_close(share, torch.tensor([0.5, 1.0], dtype=torch.float64))

    @pytest.mark.parametrize(
        ("region", "expected_box", "visible"),
        [
            ((0, 0, 20, 4), (0, 4, 10, 10), 0.6),  # covers the top across the whole width
            ((8, -5, 30, 30), (0, 0, 8, 10), 0.8),  # covers the right side
            ((3, 3, 6, 6), (0, 0, 10, 10), 0.91),  # a hole in the middle: extent kept
            ((20, 20, 30, 30), (0, 0, 10, 10), 1.0),  # no overlap
        ],
    )
    def test_remove_region(
        self, region: tuple[float, ...], expected_box: tuple[float, ...], visible: float
    ) -> None:
        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
        out, share = B.remove_region(boxes, region)  # type: ignore[arg-type]
        torch.testing.assert_close(out[0], torch.tensor(expected_box, dtype=torch.float64))
        assert float(share[0]) == pytest.approx(visible)


class TestEdges:
    def test_labels_in_a_list_beside_a_list_of_boxes_are_refused(self) -> None:
        images, targets = _batch(2, 0)
        split = {
            "image": images,
            "boxes": [t["boxes"] for t in targets],
            "labels": [t["labels"] for t in targets],
            "image_id": [3, 4],  # per image: may sit beside the boxes
        }
        with pytest.raises(
            ValueError, match=r"'boxes' as a list of BoundingBoxes beside .*'labels'"
        ):
            batchmix.CutMix(num_classes=1000)(split)
        with pytest.raises(
            ValueError, match=r"'item 1' as a list of BoundingBoxes beside .*'item 2'"
        ):
            batchmix.CutMix(num_classes=1000)(images, split["boxes"], split["labels"])
        del split["labels"]
        # Per-image entries may sit beside the boxes, even one-row tensors beside one box each.
        split["image_id"] = [torch.tensor([3]), torch.tensor([4])]
        one_box = [t["boxes"][:1] for t in targets]
        out = batchmix.CutMix(num_classes=1000, generator=torch.Generator().manual_seed(0))(
            {**split, "boxes": one_box, "labels": torch.tensor([1, 2])}  # the images' classes
        )
        assert out["image_id"] == split["image_id"] and len(out["boxes"]) == 2

    @pytest.mark.parametrize("name", ["cutmix", "saliencymix"])
    def test_a_sample_paired_with_itself_keeps_its_boxes(self, name: str) -> None:
        images, targets = _batch(1, 3, fmt="XYWH")
        cls = batchmix.CutMix if name == "cutmix" else batchmix.SaliencyMix
        for seed in range(5):
            mixed, out = cls(generator=torch.Generator().manual_seed(seed))(images, targets)
            assert torch.equal(mixed, images)
            assert out[0]["boxes"] is targets[0]["boxes"]  # untouched, not round-tripped
            assert torch.equal(out[0]["labels"], targets[0]["labels"])

    @pytest.mark.parametrize("batch", [1, 2])
    def test_mosaic_of_few_images_keeps_objects_whole(self, batch: int) -> None:
        # Batch 1: all four tiles are the sample; batch 2: each image fills one column of
        # tiles. Either way each object is visible in one rectangle and stays one box: a tall
        # box at the left, across the centre's row (the centre's x is at least 8).
        images, targets = _batch(batch, 4)
        tall = torch.tensor([[2.0, 0.0, 6.0, 32.0]])
        targets[0] = {
            "boxes": tv_tensors.BoundingBoxes(tall, format="XYXY", canvas_size=(SIZE, SIZE)),
            "labels": torch.tensor([0]),
            "image_id": torch.tensor(0),
        }
        for seed in range(4):
            transform = batchmix.Mosaic(generator=torch.Generator().manual_seed(seed))
            mixed, out = transform(images, targets)
            if batch == 1:
                assert torch.equal(mixed, images) and out[0]["boxes"] is targets[0]["boxes"]
            assert out[0]["boxes"].tolist()[0] == tall[0].tolist()
            for after in out:
                labels = after["labels"].tolist()
                assert len(labels) == len(set(labels))  # no object split into two boxes

    def test_boxes_without_area_go_where_their_point_goes(self) -> None:
        point = torch.tensor([[5.0, 5.0, 5.0, 9.0]], dtype=torch.float64)  # a vertical line
        inside, outside = (0.0, 0.0, 10.0, 10.0), (20.0, 20.0, 30.0, 30.0)
        assert B.clip_to(point, inside)[1].tolist() == [1.0]
        assert B.clip_to(point, outside)[1].tolist() == [0.0]
        assert B.remove_region(point, inside)[1].tolist() == [0.0]  # covered by the paste
        assert B.remove_region(point, outside)[1].tolist() == [1.0]

    def test_integer_boxes_rounded_to_nothing_are_dropped(self) -> None:
        images = torch.zeros(2, 3, SIZE, SIZE)
        targets = [
            {
                "boxes": tv_tensors.BoundingBoxes(
                    torch.tensor([[10, 10, 13, 12], [0, 0, 32, 32]]),
                    format="XYXY",
                    canvas_size=(SIZE, SIZE),
                ),
                "labels": torch.tensor([7, 8]),
            }
            for _ in range(2)
        ]
        transform = batchmix.ResizeMix(scale=(0.1, 0.1), generator=torch.Generator().manual_seed(0))
        _, out = transform(images, targets)
        for after in out:
            boxes = after["boxes"]
            assert boxes.dtype == torch.int64
            assert bool(((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all())
            assert after["labels"].shape[0] == boxes.shape[0] == after["weights"].shape[0]
        # The shrunk partner's small box (3×2 px at scale 0.1) is gone; its large one stays.
        assert all(8 in after["labels"][1:].tolist() for after in out)
        assert all(7 not in after["labels"][1:].tolist() for after in out)

    def test_visibility_zero_keeps_only_boxes_still_showing(self) -> None:
        own = B.BoxTarget(
            torch.tensor([[2.0, 2.0, 6.0, 6.0], [20.0, 20.0, 24.0, 24.0]]),
            {},
            torch.ones(2, dtype=torch.float64),
            None,
            tv_tensors.BoundingBoxes(torch.zeros(2, 4), format="XYXY", canvas_size=(SIZE, SIZE)),
            torch.zeros(2, 4, dtype=torch.float64),
        )
        partner = own.subset(torch.tensor([True, True]), own.boxes + 1)
        result = B.paste(own, partner, (0.0, 0.0, 10.0, 10.0), 0.0)
        # Own box 0 is covered (gone), own box 1 untouched; partner box 0 inside, box 1 outside.
        assert result.boxes.tolist() == [[20, 20, 24, 24], [3, 3, 7, 7]]
        transform = batchmix.CutMix()
        transform.min_box_visibility = 1.5
        images, targets = _batch(2, 0)
        with pytest.raises(
            ValueError, match=r"min_box_visibility to be a number in \[0, 1\], got 1.5"
        ):
            transform(images, targets)

    def test_visibility_exactly_at_the_threshold_is_kept(self) -> None:
        boxes = torch.tensor([[0.0, 0.0, 10.0, 1.0]], dtype=torch.float64)  # as parsed
        _, visible = B.remove_region(boxes, (1.0, 0.0, 10.0, 1.0))  # 9 of 10 pixels covered
        assert float(visible[0]) >= 0.1  # 1 − 0.9 would be 0.09999999999999998

    def test_random_mix_refuses_boxes_when_a_member_would(self) -> None:
        images, targets = _batch(4, 0)
        mix = batchmix.RandomMix([batchmix.CutMix(), batchmix.FMix()])
        for _ in range(6):
            with pytest.raises(
                ValueError, match=r"RandomMix: expected no bounding boxes.*\(FMix\)"
            ):
                mix(images, targets)
        weightless = batchmix.RandomMix([batchmix.CutMix(), batchmix.FMix()], p=[1.0, 0.0])
        weightless(images, targets)

    def test_untouched_boxes_come_back_as_they_were(self) -> None:
        images, targets = _batch(3, 2, fmt="CXCYWH")
        targets = [{**t, "boxes": t["boxes"].to(torch.float16)} for t in targets]
        _, out = batchmix.CutOut(size=4)(images, targets)
        for before, after in zip(targets, out, strict=True):
            assert after["boxes"] is before["boxes"]

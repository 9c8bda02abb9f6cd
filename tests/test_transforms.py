"""The transforms users instantiate: semantics, structures, label forms, randomness, errors."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from torchvision import tv_tensors
from torchvision.transforms import v2

import batchmix
from batchmix import MixParams, sampling
from batchmix.transforms import _BatchTransform

K = 10
TRANSFORMS: dict[str, Callable[..., _BatchTransform]] = {
    "cutmix": batchmix.CutMix,
    "mixup": batchmix.MixUp,
    "cutout": batchmix.CutOut,
}
PAIR_MIXERS = {k: v for k, v in TRANSFORMS.items() if k != "cutout"}


def _batch(
    batch_size: int = 6, size: int = 16, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, size, size, generator=g)
    images = (images * 255).round().to(torch.uint8) if dtype == torch.uint8 else images.to(dtype)
    return images, torch.randint(0, K, (batch_size,), generator=g)


def _params_of(transform: _BatchTransform, seed: int, images: torch.Tensor) -> MixParams | None:
    """The parameters a call with generator seed ``seed`` draws (the draw order is fixed)."""
    return transform.make_params(
        images.shape[0], images.shape[-2], images.shape[-1], torch.Generator().manual_seed(seed)
    )


def _seeded(factory: Callable[..., _BatchTransform], seed: int, **kwargs: Any) -> _BatchTransform:
    return factory(num_classes=K, generator=torch.Generator().manual_seed(seed), **kwargs)


def _mode_kwargs(name: str, mode: str) -> dict[str, Any]:
    """Constructor arguments for ``mode`` (pair mode needs a symmetric partner; CutOut has none)."""
    if name == "cutout":
        return {}
    return {"mode": mode, "partner": "flip"} if mode == "pair" else {"mode": mode}


def _partner_share(images: torch.Tensor, mixed: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per sample, the share of pixels taken from the partner (checking each pixel's origin)."""
    own = (mixed == images).all(dim=1)
    theirs = (mixed == images[index]).all(dim=1)
    assert bool((own | theirs).all()), "a pixel came from neither the sample nor its partner"
    return (theirs & ~own).flatten(1).double().mean(1)


class TestCutMix:
    @given(
        batch=st.integers(1, 7),
        size=st.integers(2, 20),
        seed=st.integers(0, 10**6),
        mode=st.sampled_from(["batch", "sample"]),
        partner=st.sampled_from(["roll", "flip", "random"]),
        alpha=st.sampled_from([0.2, 1.0, 3.0]),
    )
    def test_partner_pixel_share_equals_label_weight(
        self, batch: int, size: int, seed: int, mode: str, partner: str, alpha: float
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        # Distinct pixel values, so that each output pixel's origin is unambiguous.
        images = (
            torch.randperm(batch * 3 * size * size, generator=g).float().view(batch, 3, size, size)
        )
        labels = torch.arange(batch) % K
        transform = _seeded(batchmix.CutMix, seed, mode=mode, partner=partner, alpha=alpha)
        mixed, rows = transform(images, labels)
        params = _params_of(transform, seed, images)
        assert params is not None
        share = _partner_share(images, mixed, params.index)
        lam = (
            params.lam if isinstance(params.lam, torch.Tensor) else torch.full((batch,), params.lam)
        )
        self_paired = params.index == torch.arange(batch)
        torch.testing.assert_close(share[~self_paired], 1 - lam[~self_paired].double())
        torch.testing.assert_close(rows.sum(1), torch.ones(batch))
        # The label weight of the partner's class is its pixel share.
        expected = torch.zeros(batch, K, dtype=torch.float64)
        expected[torch.arange(batch), labels] += lam
        expected[torch.arange(batch), labels[params.index]] += 1 - lam
        torch.testing.assert_close(rows.double(), expected, rtol=0, atol=1e-6)

    @given(
        batch=st.integers(1, 9),
        height=st.integers(1, 40),
        width=st.integers(1, 40),
        seed=st.integers(0, 10**6),
        partner=st.sampled_from(["roll", "flip", "random"]),
        alpha=st.sampled_from([0.2, 1.0, 3.0]),
        p=st.sampled_from([0.5, 1.0]),
        correct_lam=st.booleans(),
    )
    def test_batch_mode_draws_what_the_tensor_path_draws(
        self,
        batch: int,
        height: int,
        width: int,
        seed: int,
        partner: str,
        alpha: float,
        p: float,
        correct_lam: bool,
    ) -> None:
        # Batch mode works in Python numbers; it must equal the per-sample tensor code run on
        # one λ with the same generator, draw for draw and bit for bit.
        transform = batchmix.CutMix(
            num_classes=K,
            alpha=alpha,
            p=p,
            partner=partner,
            correct_lam=correct_lam,  # type: ignore[arg-type]
        )
        g = torch.Generator().manual_seed(seed)
        params = transform.make_params(batch, height, width, g)
        g = torch.Generator().manual_seed(seed)
        if not bool(sampling.bernoulli(p, 1, g)[0]):
            assert params is None
            return
        lam = sampling.beta(alpha, 1, g)
        index = sampling.partner_index(batch, partner, g)  # type: ignore[arg-type]
        boxes = sampling.cutmix_boxes(lam, height, width, g)
        if correct_lam:
            lam = 1.0 - sampling.box_area_fraction(boxes, height, width)
        assert params is not None
        assert params.boxes == tuple(boxes[0].tolist())
        assert params.lam == float(lam[0])
        assert torch.equal(params.index, index)
        # Both paths leave the generator in the same state.
        after = torch.Generator().manual_seed(seed)
        transform.make_params(batch, height, width, after)
        assert torch.equal(after.get_state(), g.get_state())

    def test_correct_lam_false_keeps_drawn_lambda(self) -> None:
        images, labels = _batch(8, 8)
        seed = 3
        transform = _seeded(batchmix.CutMix, seed, correct_lam=False, mode="sample")
        _, _rows = transform(images, labels)
        g = torch.Generator().manual_seed(seed)
        sampling.bernoulli(1.0, 8, g)
        drawn = sampling.beta(1.0, 8, g)
        params = _params_of(transform, seed, images)
        assert params is not None
        torch.testing.assert_close(params.lam, drawn)

    def test_box_range_sizes(self) -> None:
        images, _labels = _batch(64, 20)
        transform = _seeded(batchmix.CutMix, 0, mode="sample", box_range=(0.25, 0.5))
        params = _params_of(transform, 0, images)
        assert params is not None and isinstance(params.boxes, torch.Tensor)
        widths = params.boxes[:, 2] - params.boxes[:, 0]
        heights = params.boxes[:, 3] - params.boxes[:, 1]
        assert int(widths.min()) >= 5 and int(widths.max()) <= 10
        assert int(heights.min()) >= 5 and int(heights.max()) <= 10
        assert int(params.boxes[:, 2].max()) <= 20 and int(params.boxes[:, 0].min()) >= 0

    def test_box_range_sides_include_the_top(self) -> None:
        # Sides are uniform over ⌊lo·H⌋..⌊hi·H⌋ = 2..5 on 10 px, the top included (timm's draw,
        # np.random.randint(lo·H, hi·H), stops at 4).
        lam = torch.ones(2000, dtype=torch.float64)
        boxes = sampling.cutmix_boxes(
            lam, 10, 10, torch.Generator().manual_seed(0), box_range=(0.2, 0.5)
        )
        assert set((boxes[:, 2] - boxes[:, 0]).tolist()) == {2, 3, 4, 5}

    def test_box_range_too_small_for_the_image_raises(self) -> None:
        images, labels = _batch(4, 16)
        before = images.clone()
        transform = batchmix.CutMix(num_classes=K, box_range=(0.001, 0.002), inplace=True)
        with pytest.raises(ValueError, match=r"CutMix: expected box_range to allow boxes of at"):
            transform(images, labels)
        assert torch.equal(images, before)
        batchmix.CutMix(num_classes=K, box_range=(0.001, 0.1))(images, labels)  # up to 1 px

    def test_box_range_reaches_last_position(self) -> None:
        # Boxes of side 2 in a 4-pixel image have 3 positions; the last one must be reachable.
        lam = torch.ones(4000, dtype=torch.float64)
        boxes = sampling.cutmix_boxes(
            lam, 4, 4, torch.Generator().manual_seed(0), box_range=(0.5, 0.5)
        )
        assert set(boxes[:, 0].tolist()) == {0, 1, 2}

    def test_box_side_follows_lambda(self) -> None:
        lam = torch.full((2000,), 0.75, dtype=torch.float64)
        boxes = sampling.cutmix_boxes(lam, 32, 32, torch.Generator().manual_seed(0))
        widths = boxes[:, 2] - boxes[:, 0]
        # Unclipped boxes have side 2·⌊½·√(1−λ)·32⌋ = 16; clipped ones are smaller.
        assert int(widths.max()) == 16
        centres = (boxes[:, 0] + boxes[:, 2]) // 2
        assert int(centres.min()) <= 4 and int(centres.max()) >= 27


class TestMixUp:
    @given(
        batch=st.integers(1, 7),
        seed=st.integers(0, 10**6),
        mode=st.sampled_from(["batch", "sample"]),
        partner=st.sampled_from(["roll", "flip", "random"]),
    )
    def test_output_is_lerp_of_pair(self, batch: int, seed: int, mode: str, partner: str) -> None:
        images, labels = _batch(batch, 5, seed, torch.float64)
        transform = _seeded(batchmix.MixUp, seed, mode=mode, partner=partner)
        mixed, rows = transform(images, labels)
        params = _params_of(transform, seed, images)
        assert params is not None
        lam = (
            params.lam if isinstance(params.lam, torch.Tensor) else torch.full((batch,), params.lam)
        )
        w = lam.view(-1, 1, 1, 1)
        torch.testing.assert_close(mixed, w * images + (1 - w) * images[params.index])
        one_hot = torch.nn.functional.one_hot(labels, K).double()
        torch.testing.assert_close(
            rows.double(), lam.view(-1, 1) * one_hot + (1 - lam.view(-1, 1)) * one_hot[params.index]
        )
        torch.testing.assert_close(rows.sum(1), torch.ones(batch))

    def test_uint8_within_one_level_of_float(self) -> None:
        images, labels = _batch(7, 12, 0, torch.uint8)
        mixed_u8, _ = _seeded(batchmix.MixUp, 5, mode="sample")(images, labels)
        mixed_f, _ = _seeded(batchmix.MixUp, 5, mode="sample")(images.float(), labels)
        assert mixed_u8.dtype == torch.uint8
        assert float((mixed_u8.float() - mixed_f).abs().max()) <= 1.0

    @pytest.mark.parametrize("alpha", [0.4, 1.0, 2.0])
    def test_lambda_follows_beta(self, alpha: float) -> None:
        transform = _seeded(batchmix.MixUp, 0, alpha=alpha, mode="sample")
        params = _params_of(transform, 0, torch.empty(4000, 1, 1, 1))
        assert params is not None and isinstance(params.lam, torch.Tensor)
        result = stats.kstest(params.lam.numpy(), stats.beta(alpha, alpha).cdf)
        assert result.pvalue > 0.01, result

    def test_lambda_histogram_of_calls_follows_beta(self) -> None:
        transform = _seeded(batchmix.MixUp, 11, alpha=0.5)
        images = torch.zeros(2, 1, 1, 1, dtype=torch.float64)
        images[1] = 1.0
        draws = []
        for _ in range(1500):
            mixed, _ = transform(images, torch.tensor([0, 1]))
            draws.append(float(mixed[1, 0, 0, 0]))  # = λ·1 + (1−λ)·0
        assert stats.kstest(draws, stats.beta(0.5, 0.5).cdf).pvalue > 0.01


@pytest.mark.parametrize("name", list(PAIR_MIXERS))
class TestPairMixers:
    def test_per_sample_mode_draws_different_lambdas(self, name: str) -> None:
        images, _labels = _batch(16, 32)
        params = _params_of(_seeded(PAIR_MIXERS[name], 0, mode="sample"), 0, images)
        assert params is not None and isinstance(params.lam, torch.Tensor)
        assert params.lam.unique().numel() > 8

    def test_batch_mode_draws_one_lambda(self, name: str) -> None:
        images, labels = _batch(16, 32)
        _, rows = _seeded(PAIR_MIXERS[name], 0)(images, labels)
        top = rows.max(1).values
        assert torch.allclose(top[labels != labels.roll(1)], top[labels != labels.roll(1)][0])

    @pytest.mark.parametrize("mode", ["batch", "sample"])
    def test_p_zero_changes_no_pixel(self, name: str, mode: str) -> None:
        images, labels = _batch()
        mixed, rows = _seeded(PAIR_MIXERS[name], 0, p=0.0, mode=mode)(images, labels)
        assert torch.equal(mixed, images)
        assert torch.equal(rows, torch.nn.functional.one_hot(labels, K).float())

    def test_per_sample_probability(self, name: str) -> None:
        images = torch.empty(4000, 1, 64, 64)  # large enough that a drawn box is never empty
        params = _params_of(_seeded(PAIR_MIXERS[name], 1, p=0.3, mode="sample"), 1, images)
        assert params is not None and isinstance(params.lam, torch.Tensor)
        mixed_share = float((params.lam < 1).double().mean())
        assert 0.27 < mixed_share < 0.33

    def test_batch_probability(self, name: str) -> None:
        transform = _seeded(PAIR_MIXERS[name], 2, p=0.25)
        images, labels = _batch(4, 8)
        mixed_calls = sum(not torch.equal(transform(images, labels)[0], images) for _ in range(400))
        assert 70 < mixed_calls < 130

    @pytest.mark.parametrize("partner", ["roll", "flip", "random"])
    def test_partners(self, name: str, partner: str) -> None:
        index = sampling.partner_index(7, partner, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
        assert sorted(index.tolist()) == list(range(7))
        assert bool((index != torch.arange(7)).all()) or partner == "flip"
        if partner == "roll":
            assert index.tolist() == [6, 0, 1, 2, 3, 4, 5]
        if partner == "flip":
            assert index.tolist() == [6, 5, 4, 3, 2, 1, 0]

    def test_smoothed_labels(self, name: str) -> None:
        images, labels = _batch()
        _, rows = _seeded(PAIR_MIXERS[name], 0, p=0.0, label_smoothing=0.1)(images, labels)
        logits = torch.randn(6, K)
        torch.testing.assert_close(
            torch.nn.functional.cross_entropy(logits, rows),
            torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1),
        )

    def test_soft_and_multi_label_rows_mixed_as_given(self, name: str) -> None:
        images, _ = _batch(6)
        multi = (torch.rand(6, K) > 0.5).float()
        for labels in (multi, torch.softmax(torch.randn(6, K), 1).double()):
            transform = PAIR_MIXERS[name](
                generator=torch.Generator().manual_seed(4)
            )  # num_classes optional
            _, rows = transform(images, labels)
            params = _params_of(transform, 4, images)
            assert params is not None
            lam = torch.as_tensor(params.lam, dtype=torch.float64).reshape(-1, 1)
            assert rows.dtype == labels.dtype
            torch.testing.assert_close(
                rows.double(), lam * labels.double() + (1 - lam) * labels.double()[params.index]
            )

    def test_integer_one_hot_rows_become_float(self, name: str) -> None:
        images, labels = _batch(6)
        _, rows = PAIR_MIXERS[name](num_classes=K)(images, torch.nn.functional.one_hot(labels, K))
        assert rows.dtype == torch.float32
        torch.testing.assert_close(rows.sum(1), torch.ones(6))

    def test_disabled_keeps_images_and_label_format(self, name: str) -> None:
        transform = PAIR_MIXERS[name](num_classes=K)
        transform.enabled = False
        images, labels = _batch()
        mixed, rows = transform(images, labels)
        assert mixed is images
        assert torch.equal(rows, torch.nn.functional.one_hot(labels, K).float())


@pytest.mark.parametrize("name", list(TRANSFORMS))
class TestCommon:
    @pytest.mark.parametrize("mode", ["batch", "pair", "sample"])
    @pytest.mark.parametrize(
        "dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8], ids=str
    )
    def test_never_mutates_input(self, name: str, mode: str, dtype: torch.dtype) -> None:
        images, labels = _batch(5, 24, dtype=dtype)
        before = images.clone(), labels.clone()
        versions = images._version, labels._version
        kwargs = _mode_kwargs(name, mode)
        mixed, rows = _seeded(TRANSFORMS[name], 0, **kwargs)(images, labels)
        assert (images._version, labels._version) == versions
        assert torch.equal(images, before[0]) and torch.equal(labels, before[1])
        assert mixed.dtype == dtype and mixed.shape == images.shape
        assert rows.shape == (5, K) and rows.dtype == torch.float32
        assert not torch.equal(mixed, images)

    @pytest.mark.parametrize("mode", ["batch", "pair", "sample"])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8], ids=str)
    def test_inplace_reuses_memory(self, name: str, mode: str, dtype: torch.dtype) -> None:
        images, labels = _batch(5, 24, dtype=dtype)
        kwargs = _mode_kwargs(name, mode)
        expected, expected_rows = _seeded(TRANSFORMS[name], 3, **kwargs)(images, labels)
        work = images.clone()
        mixed, rows = _seeded(TRANSFORMS[name], 3, inplace=True, **kwargs)(work, labels)
        assert mixed.data_ptr() == work.data_ptr()
        assert torch.equal(mixed, expected) and torch.equal(rows, expected_rows)

    @pytest.mark.parametrize("batch_size", [1, 2, 3, 7])
    @pytest.mark.parametrize("mode", ["batch", "pair", "sample"])
    @pytest.mark.parametrize("partner", ["roll", "flip", "random"])
    def test_odd_and_tiny_batches(
        self, name: str, batch_size: int, mode: str, partner: str
    ) -> None:
        images, labels = _batch(batch_size, 8)
        kwargs = {} if name == "cutout" else {"mode": mode, "partner": partner}
        if mode == "pair" and partner == "roll" and name != "cutout":
            with pytest.raises(ValueError, match="expected partner 'flip'"):
                _seeded(TRANSFORMS[name], 0, **kwargs)
            return
        mixed, rows = _seeded(TRANSFORMS[name], 0, **kwargs)(images, labels)
        assert mixed.shape == images.shape and rows.shape == (batch_size, K)
        torch.testing.assert_close(rows.sum(1), torch.ones(batch_size))

    def test_channels_last_dtype_device_kept(self, name: str, device: str) -> None:
        images, labels = _batch(4, 16)
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        mixed, rows = TRANSFORMS[name](num_classes=K)(images, labels.to(device))
        assert mixed.is_contiguous(memory_format=torch.channels_last)
        assert mixed.device == images.device and rows.device == images.device

    def test_reproducible_with_equal_seeds(self, name: str) -> None:
        images, labels = _batch(8, 16)
        first = _seeded(TRANSFORMS[name], 42)(images, labels)
        second = _seeded(TRANSFORMS[name], 42)(images, labels)
        other = _seeded(TRANSFORMS[name], 43)(images, labels)
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
        assert not torch.equal(first[0], other[0])

    def test_global_rng_when_no_generator(self, name: str) -> None:
        images, labels = _batch(8, 16)
        torch.manual_seed(0)
        first = TRANSFORMS[name](num_classes=K)(images, labels)
        torch.manual_seed(0)
        second = TRANSFORMS[name](num_classes=K)(images, labels)
        assert torch.equal(first[0], second[0])

    def test_picklable(self, name: str) -> None:
        transform = _seeded(TRANSFORMS[name], 0)
        clone = pickle.loads(pickle.dumps(transform))
        images, labels = _batch()
        assert torch.equal(transform(images, labels)[0], clone(images, labels)[0])


class TestStructures:
    @pytest.mark.parametrize("name", list(TRANSFORMS))
    def test_call_forms_return_same_structure(self, name: str) -> None:
        images, labels = _batch()
        outputs = []
        for call in ("args", "tuple", "list", "dict"):
            transform = _seeded(TRANSFORMS[name], 9)
            if call == "args":
                out = transform(images, labels)
                assert isinstance(out, tuple) and len(out) == 2
                outputs.append(out)
            elif call == "tuple":
                out = transform((images, labels))
                assert isinstance(out, tuple)
                outputs.append(out)
            elif call == "list":
                out = transform([images, labels])
                assert isinstance(out, list)
                outputs.append(tuple(out))
            else:
                out = transform({"image": images, "labels": labels, "id": "kept"})
                assert set(out) == {"image", "labels", "id"} and out["id"] == "kept"
                outputs.append((out["image"], out["labels"]))
        for mixed, rows in outputs[1:]:
            assert torch.equal(mixed, outputs[0][0]) and torch.equal(rows, outputs[0][1])

    def test_seed_nested_dict_with_labels_getter(self) -> None:
        batch = {
            "imgs": torch.rand(4, 3, 224, 224),
            "target": {
                "classes": torch.randint(0, 100, size=(4,)),
                "some_other_key": "passed through",
            },
        }
        cutmix = batchmix.CutMix(num_classes=100, labels_getter=lambda b: b["target"]["classes"])
        out = cutmix(batch)
        assert out["imgs"].shape == (4, 3, 224, 224)
        assert out["target"]["classes"].shape == (4, 100)
        assert out["target"]["some_other_key"] == "passed through"

    def test_label_like_key(self) -> None:
        out = batchmix.MixUp(num_classes=K)(
            {"pixels": torch.rand(3, 1, 4, 4), "class_label": torch.tensor([1, 2, 3])}
        )
        assert out["class_label"].shape == (3, K)

    @pytest.mark.parametrize("kind", [tv_tensors.Image, tv_tensors.Video])
    def test_tv_tensors_keep_their_type(self, kind: type) -> None:
        shape = (4, 3, 8, 8) if kind is tv_tensors.Image else (4, 2, 3, 8, 8)
        images = kind(torch.rand(shape))
        for name in TRANSFORMS:
            mixed, _ = TRANSFORMS[name](num_classes=K)(images, torch.tensor([0, 1, 2, 3]))
            assert type(mixed) is kind

    def test_plain_tensors_stay_plain(self) -> None:
        mixed, _ = batchmix.CutMix(num_classes=K)(*_batch())
        assert type(mixed) is torch.Tensor

    def test_several_image_batches_share_parameters(self) -> None:
        images, labels = _batch()
        a, b = tv_tensors.Image(images), tv_tensors.Image(images.clone())
        out = _seeded(batchmix.CutMix, 0)({"a": a, "b": b, "labels": labels})
        assert torch.equal(out["a"], out["b"]) and not torch.equal(out["a"], images)

    @pytest.mark.parametrize("name", sorted(TRANSFORMS))
    def test_other_tensors_pass_through_as_in_torchvision(self, name: str) -> None:
        # torchvision's rule: the images are the tv_tensors.Image/Video entries or, when there
        # are none, the first plain tensor; any other tensor (sample ids, extra data) is left as
        # it came.
        images, labels = _batch()
        ids, extra = torch.arange(6), torch.rand(6, 3, 8, 8)
        t = TRANSFORMS[name](num_classes=K)
        out = t(images, labels, ids)
        assert out[2] is ids and out[1].shape == (6, K)
        out = t({"image": images, "label": labels, "idx": ids, "extra": extra})
        assert out["idx"] is ids and out["extra"] is extra
        out = t(tv_tensors.Image(images), labels, extra)
        assert out[2] is extra and type(out[0]) is tv_tensors.Image
        reference = v2.CutMix(num_classes=K)(images, labels, ids)
        assert reference[2] is ids

    def test_cutout_on_images_alone(self) -> None:
        images = torch.rand(3, 3, 16, 16)
        out = batchmix.CutOut(size=4)(images)
        assert isinstance(out, torch.Tensor) and (out == 0).any()

    def test_cutout_passes_labels_through_without_num_classes(self) -> None:
        images, labels = _batch()
        _, out_labels = batchmix.CutOut(size=4)(images, labels)
        assert out_labels is labels

    @pytest.mark.parametrize("wrapper", [v2.RandomChoice, v2.Compose])
    def test_inside_torchvision_containers(self, wrapper: Callable[..., Any]) -> None:
        transform = (
            wrapper([batchmix.CutMix(num_classes=K), batchmix.MixUp(num_classes=K)])
            if wrapper is v2.RandomChoice
            else wrapper([batchmix.CutMix(num_classes=K)])
        )
        images, labels = _batch()
        mixed, rows = transform(images, labels)
        assert mixed.shape == images.shape and rows.shape == (6, K)
        mixed, rows = transform((images, labels))
        assert rows.shape == (6, K)


class TestRandomMix:
    def test_follows_weights(self) -> None:
        cutout = batchmix.CutOut(size=4, num_classes=K)
        mixup = batchmix.MixUp(num_classes=K)
        chooser = batchmix.RandomMix(
            [cutout, mixup], p=[1, 3], generator=torch.Generator().manual_seed(0)
        )
        images, labels = _batch(4, 8)
        mixups = 0
        for _ in range(400):
            mixed, _ = chooser(images, labels)
            mixups += int((mixed != 0).all() and not torch.equal(mixed, images))
        assert 270 < mixups < 330

    def test_enabled_switches_all_members(self) -> None:
        chooser = batchmix.RandomMix(
            [batchmix.CutMix(num_classes=K), batchmix.MixUp(num_classes=K)]
        )
        chooser.enabled = False
        assert not chooser.enabled
        images, labels = _batch()
        for _ in range(5):
            mixed, rows = chooser(images, labels)
            assert mixed is images and rows.shape == (6, K)
        chooser.enabled = True
        assert all(t.enabled for t in chooser.transforms)  # type: ignore[attr-defined]

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match="RandomMix: expected a non-empty list"):
            batchmix.RandomMix([])
        with pytest.raises(ValueError, match="one weight per transform"):
            batchmix.RandomMix([batchmix.MixUp()], p=[0.5, 0.5])
        with pytest.raises(ValueError, match="non-negative weights"):
            batchmix.RandomMix([batchmix.MixUp()], p=[-1])
        two = [batchmix.MixUp(), batchmix.CutMix()]
        for weights in ([math.inf, 1.0], [1e308, 1e308], [math.nan, 1.0]):
            with pytest.raises(ValueError, match="finite non-negative weights"):
                batchmix.RandomMix(two, p=weights)
        with pytest.raises(TypeError, match=r"p to be a list of weights.*p=\[1 - s, s\]"):
            batchmix.RandomMix(two, p=0.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="finite non-negative weights"):
            batchmix.RandomMix(two, p=[1, 2**1100])
        # Any iterable of real numbers, 0-d tensors included.
        weights = {"mixup": 1.0, "cutmix": 3.0}
        for p in (weights.values(), iter([1.0, 3.0]), [torch.tensor(1.0), torch.tensor(3)]):
            assert batchmix.RandomMix(two, p=p).p == [0.25, 0.75]  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected callable transforms"):
            batchmix.RandomMix([3])  # type: ignore[list-item]


class TestRandomMixPerSample:
    """``mode="sample"``: timm's ``mode="elem"`` switch between methods, one draw per sample."""

    @staticmethod
    def _members(seed: int) -> list[_BatchTransform]:
        return [
            batchmix.MixUp(num_classes=K, mode="sample", partner="flip", alpha=0.8,
                           generator=torch.Generator().manual_seed(seed)),
            batchmix.CutMix(num_classes=K, mode="sample", partner="flip",
                            generator=torch.Generator().manual_seed(seed + 1)),
        ]  # fmt: skip

    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
    def test_each_sample_from_the_member_drawn_for_it(self, dtype: torch.dtype) -> None:
        images, labels = _batch(16, 12, dtype=dtype)
        before = images.clone()
        chooser = batchmix.RandomMix(
            self._members(5),
            p=[0.3, 0.7],
            mode="sample",
            generator=torch.Generator().manual_seed(9),
        )
        mixed, rows = chooser(images, labels)
        assert torch.equal(images, before) and mixed.dtype == dtype and rows.shape == (16, K)
        choice = torch.multinomial(
            torch.tensor([0.3, 0.7], dtype=torch.float64),
            16,
            replacement=True,
            generator=torch.Generator().manual_seed(9),
        )
        assert 0 < int(choice.sum()) < 16  # both members drawn
        alone = [member(images, labels) for member in self._members(5)]
        for i, m in enumerate(choice.tolist()):
            assert torch.equal(mixed[i], alone[m][0][i])
            assert torch.equal(rows[i], alone[m][1][i])

    def test_in_place_disabled_and_collate(self) -> None:
        images, labels = _batch(8, 12)
        chooser = batchmix.RandomMix(self._members(1), mode="sample")
        work = images.clone()
        mixed, _ = chooser.mix_batch(work, labels, inplace=True)
        assert mixed is work and not torch.equal(work, images)
        chooser.enabled = False
        mixed, rows = chooser(images, labels)
        assert mixed is images  # nothing mixed: the very same tensor, as every transform does
        assert torch.equal(rows, torch.nn.functional.one_hot(labels, K).float())
        chooser.enabled = True
        collate = batchmix.MixCollate(chooser)
        batch, rows = collate(
            [(image, int(label)) for image, label in zip(images, labels, strict=True)]
        )
        assert batch.shape == images.shape and rows.shape == (8, K)

    def test_label_rows_follow_each_samples_member_even_when_nothing_is_mixed(self) -> None:
        members = [
            batchmix.MixUp(num_classes=K, p=0.0),
            batchmix.CutMix(num_classes=K, p=0.0, label_smoothing=0.2),
        ]
        g = torch.Generator().manual_seed(1)
        images, labels = _batch(16, 8)
        mixed, rows = batchmix.RandomMix(members, mode="sample", generator=g)(images, labels)
        choice = torch.multinomial(
            torch.tensor([0.5, 0.5], dtype=torch.float64),
            16,
            replacement=True,
            generator=torch.Generator().manual_seed(1),
        )
        assert mixed is images and 0 < int(choice.sum()) < 16
        one_hot = torch.nn.functional.one_hot(labels, K).float()
        smoothed = batchmix.functional.one_hot(labels, K, smoothing=0.2)
        for i, m in enumerate(choice.tolist()):
            assert torch.equal(rows[i], smoothed[i] if m else one_hot[i])

    def test_members_without_num_classes_on_label_rows(self) -> None:
        images, labels = _batch(16, 8)
        rows = torch.nn.functional.one_hot(labels, K).float()
        members = [batchmix.CutOut(size=4), batchmix.MixUp(num_classes=K)]
        _, out = batchmix.RandomMix(members, mode="sample")(images, rows)
        assert out.shape == (16, K)

    def test_members_find_labels_with_their_own_getter(self) -> None:
        def getter(sample: dict[str, Any]) -> torch.Tensor:
            return sample["target"]

        members = [
            batchmix.MixUp(num_classes=K, labels_getter=getter, mode="sample"),
            batchmix.CutMix(num_classes=K, labels_getter=getter, mode="sample"),
        ]
        images, labels = _batch(16, 8)
        sample = {"image": images, "target": labels, "ids": torch.arange(16)}
        out = batchmix.RandomMix(members, mode="sample")(sample)
        assert out["target"].shape == (16, K) and out["ids"] is sample["ids"]
        assert not torch.equal(out["image"], images)

    def test_errors(self) -> None:
        with pytest.raises(TypeError, match="RandomMix: expected batchmix transforms"):
            batchmix.RandomMix([batchmix.MixUp(num_classes=K), v2.RandomErasing()], mode="sample")
        with pytest.raises(ValueError, match="RandomMix: expected mode to be one of"):
            batchmix.RandomMix([batchmix.MixUp(num_classes=K)], mode="elem")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="RandomMix: expected members with one num_classes"):
            batchmix.RandomMix(
                [batchmix.MixUp(num_classes=K), batchmix.CutOut(num_classes=K + 1)], mode="sample"
            )
        chooser = batchmix.RandomMix(
            [batchmix.MixUp(num_classes=K), batchmix.CutOut(num_classes=K)], mode="sample"
        )
        images, labels = _batch(16, 8)
        masks = tv_tensors.Mask(torch.zeros(16, 8, 8, dtype=torch.long))
        with pytest.raises(ValueError, match="RandomMix: expected one image batch"):
            chooser({"image": images, "masks": masks, "labels": labels})


class TestPairMode:
    """``mode="pair"``: timm's pair mode, one λ (and box) per pair of partners."""

    @given(
        batch=st.integers(1, 9),
        seed=st.integers(0, 10**6),
        partner=st.sampled_from(["flip", "random"]),
        p=st.sampled_from([1.0, 0.5]),
        name=st.sampled_from(["cutmix", "mixup"]),
    )
    def test_partners_swap_with_one_draw(
        self, batch: int, seed: int, partner: str, p: float, name: str
    ) -> None:
        images, labels = _batch(batch, 12, seed)
        images = images + torch.arange(batch).view(-1, 1, 1, 1)  # every pixel tells its sample
        transform = _seeded(PAIR_MIXERS[name], seed, mode="pair", partner=partner, p=p)
        params = _params_of(transform, seed, images)
        mixed, rows = transform(images, labels)
        if params is None:  # no pair drawn to be mixed: the very input comes back
            assert mixed is images
            assert torch.equal(rows, torch.nn.functional.one_hot(labels, K).float())
            return
        assert isinstance(params.lam, torch.Tensor)
        index = params.index
        assert torch.equal(index[index], torch.arange(batch))  # i's partner has i as partner
        assert torch.equal(params.lam, params.lam[index])
        if name == "cutmix":
            assert isinstance(params.boxes, torch.Tensor)
            assert torch.equal(params.boxes, params.boxes[index])
        for i, j in enumerate(index.tolist()):
            if i == j:  # the odd one out is left as it is, bit for bit
                assert float(params.lam[i]) == 1.0 and torch.equal(mixed[i], images[i])
            if name == "cutmix":  # the same region swapped both ways
                x1, y1, x2, y2 = params.boxes[i].tolist()
                assert torch.equal(mixed[i, :, y1:y2, x1:x2], images[j, :, y1:y2, x1:x2])
            lam = float(params.lam[i])
            expected = torch.zeros(K, dtype=torch.float64)
            expected[labels[i]] += lam
            expected[labels[j]] += 1.0 - lam
            torch.testing.assert_close(rows[i].double(), expected, rtol=0, atol=1e-6)

    def test_random_pairs_cover_the_batch(self) -> None:
        g = torch.Generator().manual_seed(3)
        for batch in (2, 7, 8):
            index = sampling.partner_index(batch, "random", g, pairs=True)
            assert torch.equal(index[index], torch.arange(batch))
            assert int((index == torch.arange(batch)).sum()) == batch % 2

    @pytest.mark.parametrize("name", ["cutmix", "mixup"])
    def test_equals_timm_pair_mode(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        import numpy as np
        import timm.data.mixup as timm_mixup

        boxes: list[tuple[int, int, int, int]] = []
        original = timm_mixup.cutmix_bbox_and_lam

        def recorded(*args: Any, **kwargs: Any) -> Any:
            (yl, yh, xl, xh), lam = original(*args, **kwargs)
            boxes.append((xl, yl, xh, yh))
            return (yl, yh, xl, xh), lam

        monkeypatch.setattr(timm_mixup, "cutmix_bbox_and_lam", recorded)
        batch = 8
        images, labels = _batch(batch, 16)
        reference = timm_mixup.Mixup(
            mixup_alpha=1.0 if name == "mixup" else 0.0,
            cutmix_alpha=1.0 if name == "cutmix" else 0.0,
            mode="pair",
            label_smoothing=0.0,
            num_classes=K,
        )
        for seed in range(5):
            boxes.clear()
            np.random.seed(seed)
            first_lams, _ = reference._params_per_elem(batch // 2)
            np.random.seed(seed)
            expected_images, expected_rows = reference(images.clone(), labels)
            # The same pairs and λ as batchmix's pair mode with partner="flip" draws them.
            index = sampling.partner_index(batch, "flip", None, pairs=True)
            first_lams = torch.from_numpy(first_lams.astype(np.float64))
            if name == "cutmix":
                box_rows = torch.tensor(boxes + boxes[::-1])
                lam = 1.0 - sampling.box_area_fraction(box_rows, 16, 16)
                mixed = batchmix.functional.cutmix(images, index, box_rows)
                assert torch.equal(mixed, expected_images)
            else:
                lam = torch.cat([first_lams, first_lams.flip(0)])
                mixed = batchmix.functional.mixup(images, index, lam)
                assert torch.equal(mixed, expected_images)
            rows = batchmix.functional.mix_labels(
                batchmix.functional.one_hot(labels, K), index, lam
            )
            torch.testing.assert_close(rows, expected_rows)

    @pytest.mark.parametrize("timm_mode", ["batch", "elem"])
    @pytest.mark.parametrize("name", ["cutmix", "mixup"])
    def test_equals_timm_batch_and_elem_modes(
        self, name: str, timm_mode: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """timm's other two modes: its recorded λ and boxes through batchmix's kernels with
        partner "flip" give its images and targets."""
        import numpy as np
        import timm.data.mixup as timm_mixup

        boxes: list[tuple[int, int, int, int]] = []
        lams: list[Any] = []
        original_box = timm_mixup.cutmix_bbox_and_lam
        params_name = "_params_per_elem" if timm_mode == "elem" else "_params_per_batch"
        original_params = getattr(timm_mixup.Mixup, params_name)

        def recorded_box(*args: Any, **kwargs: Any) -> Any:
            (yl, yh, xl, xh), lam = original_box(*args, **kwargs)
            boxes.append((int(xl), int(yl), int(xh), int(yh)))
            return (yl, yh, xl, xh), lam

        def recorded_params(self: Any, *args: Any) -> Any:
            lam, use_cutmix = original_params(self, *args)
            lams.append(np.array(lam, dtype=np.float64))
            return lam, use_cutmix

        monkeypatch.setattr(timm_mixup, "cutmix_bbox_and_lam", recorded_box)
        monkeypatch.setattr(timm_mixup.Mixup, params_name, recorded_params)
        batch = 6
        images, labels = _batch(batch, 16)
        reference = timm_mixup.Mixup(
            mixup_alpha=1.0 if name == "mixup" else 0.0,
            cutmix_alpha=1.0 if name == "cutmix" else 0.0,
            mode=timm_mode,
            label_smoothing=0.1,
            num_classes=K,
        )
        index = sampling.partner_index(batch, "flip", None)
        for seed in range(5):
            boxes.clear()
            lams.clear()
            np.random.seed(seed)
            expected_images, expected_rows = reference(images.clone(), labels)
            if name == "cutmix":
                box_rows = torch.tensor(boxes * batch if timm_mode == "batch" else boxes)
                mixed = batchmix.functional.cutmix(images, index, box_rows)
                lam = 1.0 - sampling.box_area_fraction(box_rows, 16, 16)
                assert torch.equal(mixed, expected_images)
            else:
                lam = torch.from_numpy(lams[0]).expand(batch).contiguous()
                mixed = batchmix.functional.mixup(images, index, lam)
                assert torch.equal(mixed, expected_images)
            rows = batchmix.functional.mix_labels(
                batchmix.functional.one_hot(labels, K, smoothing=0.1), index, lam
            )
            torch.testing.assert_close(rows, expected_rows)

    def test_refused_where_pairs_do_not_exist(self) -> None:
        with pytest.raises(
            ValueError, match=r"CutMix: expected partner 'flip'.*got partner='roll'"
        ):
            batchmix.CutMix(num_classes=K, mode="pair")
        with pytest.raises(
            ValueError, match="Mosaic: expected mode 'batch' or 'sample', got 'pair'"
        ):
            batchmix.Mosaic(mode="pair", partner="flip")
        for member in (
            batchmix.MixUp(num_classes=K),
            batchmix.CutMix(num_classes=K, mode="pair", partner="random"),
            "not a transform",
        ):
            with pytest.raises((ValueError, TypeError), match="RandomMix: expected"):
                batchmix.RandomMix([member], mode="pair")  # type: ignore[list-item]
        with pytest.raises(ValueError, match="partner_index: expected partner 'flip' or 'random'"):
            sampling.partner_index(4, "roll", None, pairs=True)

    def test_odd_one_out_and_nothing_drawn(self) -> None:
        images = torch.rand(5, 3, 32, 32)
        targets = [
            {
                "boxes": tv_tensors.BoundingBoxes(
                    torch.tensor([[4, 4, 28, 28]]), format="XYXY", canvas_size=(32, 32)
                ),
                "labels": torch.tensor([k]),
            }
            for k in range(5)
        ]
        for seed in range(5):
            g = torch.Generator().manual_seed(seed)
            mixed, _ = batchmix.MixUp(num_classes=K, mode="pair", partner="flip", generator=g)(
                images, torch.arange(5)
            )
            assert torch.equal(mixed[2], images[2])  # λ·x + (1−λ)·x would round differently
            resized, out = batchmix.ResizeMix(mode="pair", partner="flip", generator=g)(
                images, targets
            )
            assert torch.equal(resized[2], images[2]) and len(out[2]["boxes"]) == 1
        # p < 1: some calls draw only the second sample of each pair, which do not count.
        transform = batchmix.CutMix(
            num_classes=K, mode="pair", partner="flip", p=0.5, generator=torch.Generator()
        )
        unmixed, four = 0, images[:4]
        for seed in range(40):
            transform.generator.manual_seed(seed)  # type: ignore[union-attr]
            mixed, _ = transform(four, torch.arange(4))
            if torch.equal(mixed, four):
                assert mixed is four
                unmixed += 1
        assert 5 < unmixed < 20  # a quarter expected

    def test_random_mix_draws_the_method_per_pair(self) -> None:
        images, labels = _batch(9, 16)
        members = [
            _seeded(batchmix.MixUp, 0, mode="pair", partner="flip"),
            _seeded(batchmix.CutMix, 0, mode="pair", partner="flip"),
            batchmix.CutOut(num_classes=K, size=4),
        ]
        mix = batchmix.RandomMix(members, mode="pair", generator=torch.Generator().manual_seed(2))
        kinds = set()
        for _ in range(20):
            _, rows = mix(images, labels)
            for i in range(9):
                j = 8 - i
                # A pair shares its member: λ (the own share) is equal on both sides, and a
                # CutOut pair keeps one-hot rows on both sides.
                own_i, own_j = float(rows[i, labels[i]]), float(rows[j, labels[j]])
                if labels[i] != labels[j]:
                    assert own_i == pytest.approx(own_j, abs=1e-6)
                kinds.add(round(own_i, 6) == 1.0)
        assert kinds == {True, False}

    def test_collate_and_random_mix_members(self) -> None:
        from torch.utils.data import default_collate

        samples = [(torch.rand(3, 8, 8), i) for i in range(6)]
        members = [
            _seeded(batchmix.MixUp, 1, mode="pair", partner="random"),
            _seeded(batchmix.CutMix, 1, mode="pair", partner="random"),
        ]
        for member in members:
            expected = member(default_collate(samples))
            member.generator = torch.Generator().manual_seed(1)
            got = batchmix.MixCollate(member)(samples)
            assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        _, rows = batchmix.RandomMix(members)(*default_collate(samples))
        assert rows.shape == (6, K)


class TestReferences:
    def test_cutmix_equals_torchvision(self) -> None:
        images, labels = _batch(7, 33)
        images = images[..., :29]  # a non-square image
        reference = v2.CutMix(num_classes=K, alpha=0.7)
        for seed in range(20):
            torch.manual_seed(seed)
            params = reference.make_params([images])
            torch.manual_seed(seed)
            expected_images, expected_rows = reference(images, labels)
            x1, y1, x2, y2 = params["box"]
            index = sampling.partner_index(7, "roll", None)
            mixed = batchmix.functional.cutmix(images, index, (x1, y1, x2, y2))
            rows = batchmix.functional.mix_labels(
                batchmix.functional.one_hot(labels, K), index, params["lam_adjusted"]
            )
            assert torch.equal(mixed, expected_images)
            assert torch.equal(rows, expected_rows)

    def test_cutmix_boxes_follow_torchvision_geometry(self) -> None:
        # Drawing λ, then the centre's x and y from the same global RNG state gives
        # exactly torchvision's box.
        reference = v2.CutMix(num_classes=K)
        images = torch.rand(2, 3, 40, 24)
        for seed in range(50):
            torch.manual_seed(seed)
            lam = float(reference._dist.sample(()))  # type: ignore[arg-type]
            boxes = sampling.cutmix_boxes(torch.tensor([lam], dtype=torch.float64), 40, 24, None)
            torch.manual_seed(seed)
            expected = reference.make_params([images])["box"]
            assert tuple(boxes[0].tolist()) == tuple(expected)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
    def test_mixup_equals_torchvision(self, dtype: torch.dtype) -> None:
        images, labels = _batch(5, 12, dtype=dtype)
        reference = v2.MixUp(num_classes=K, alpha=0.4)
        for seed in range(10):
            torch.manual_seed(seed)
            lam = reference.make_params([images])["lam"]
            torch.manual_seed(seed)
            expected_images, expected_rows = reference(images, labels)
            index = sampling.partner_index(5, "roll", None)
            assert torch.equal(batchmix.functional.mixup(images, index, lam), expected_images)
            work = images.clone()
            assert torch.equal(
                batchmix.functional.mixup(work, index, lam, out=work), expected_images
            )
            rows = batchmix.functional.mix_labels(
                batchmix.functional.one_hot(labels, K), index, lam
            )
            assert torch.equal(rows, expected_rows)

    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_smoothed_labels_equal_timm(self, smoothing: float) -> None:
        from timm.data.mixup import mixup_target

        images, labels = _batch(6, 8)
        transform = _seeded(batchmix.MixUp, 0, partner="flip", label_smoothing=smoothing)
        _, rows = transform(images, labels)
        params = _params_of(transform, 0, images)
        assert params is not None and isinstance(params.lam, float)
        expected = mixup_target(labels, K, lam=params.lam, smoothing=smoothing)
        assert torch.equal(rows, expected)

    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_multi_label_rows_equal_timm(self, smoothing: float) -> None:
        from timm.data.mixup import mixup_target

        images = _batch(6, 8)[0]
        targets = (torch.rand(6, K, generator=torch.Generator().manual_seed(1)) > 0.6).float()
        transform = _seeded(
            batchmix.MixUp, 0, partner="flip", label_smoothing=smoothing, multi_label=True
        )
        _, rows = transform(images, targets)
        params = _params_of(transform, 0, images)
        assert params is not None and isinstance(params.lam, float)
        expected = mixup_target(targets, K, params.lam, smoothing, multi_label=True)
        assert torch.equal(rows, expected)
        with pytest.raises(ValueError, match=r"MixUp: expected \(B, K\) rows of 0/1 targets"):
            transform(images, torch.arange(6))
        with pytest.raises(ValueError, match=r"CutOut: expected \(B, K\) rows of 0/1 targets"):
            batchmix.CutOut(multi_label=True)(images, torch.arange(6))
        assert "multi_label=True" in repr(transform)

    @pytest.mark.parametrize(
        "name",
        ["CutMix", "MixUp", "CutOut", "ResizeMix", "FMix", "GridMix", "SaliencyMix", "Mosaic"],
    )
    def test_every_transform_takes_multi_label(self, name: str) -> None:
        targets = torch.zeros(4, K)
        targets[:, 0] = 1.0
        t = getattr(batchmix, name)(num_classes=K, multi_label=True, label_smoothing=0.2)
        _, rows = t(torch.rand(4, 3, 16, 16), targets)
        # Smoothed towards 0.5 (0.9 and 0.1), then mixed: every row is still 0.9 / 0.1 there.
        torch.testing.assert_close(rows[:, 0], torch.full((4,), 0.9))
        torch.testing.assert_close(rows[:, 1:], torch.full((4, K - 1), 0.1))


class TestErrors:
    @pytest.mark.parametrize("name", list(PAIR_MIXERS))
    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"alpha": 0.0}, ValueError, r"alpha in \(0, inf\), got 0.0"),
            ({"alpha": -1}, ValueError, "alpha"),
            ({"p": 1.5}, ValueError, r"p in \[0, 1\], got 1.5"),
            ({"p": -0.1}, ValueError, r"p in \[0, 1\]"),
            (
                {"mode": "elem"},
                ValueError,
                "mode to be one of 'batch', 'pair', 'sample', got 'elem'",
            ),
            (
                {"partner": "shuffle"},
                ValueError,
                "partner to be one of 'roll', 'flip', 'random', got 'shuffle'",
            ),
            ({"label_smoothing": 1.5}, ValueError, r"label_smoothing in \[0, 1\]"),
            ({"num_classes": 0}, ValueError, "num_classes to be a positive int"),
            ({"generator": 3}, TypeError, "generator to be a torch.Generator"),
            (
                {"labels_getter": "labels"},
                ValueError,
                "labels_getter to be 'default', a callable or None",
            ),
        ],
    )
    def test_constructor(
        self, name: str, kwargs: dict[str, Any], error: type[Exception], match: str
    ) -> None:
        with pytest.raises(error, match=f"{TRANSFORMS[name].__name__}: expected {match}"):
            TRANSFORMS[name](**kwargs)

    def test_numpy_numbers_and_tensor_weights_are_accepted(self) -> None:
        # As torchvision accepts them (it converts with float()/int()); stored as Python numbers.
        import numpy as np

        t = batchmix.CutMix(num_classes=np.int64(10), alpha=np.float32(0.5), p=np.float64(1))
        assert type(t.num_classes) is int and t.num_classes == 10 and t.p == 1.0
        assert type(batchmix.CutOut(size=np.int32(4)).size) is int
        rows = batchmix.MixUp(num_classes=3, label_smoothing=1.0)(
            torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
        )[1]
        torch.testing.assert_close(rows, torch.full((2, 3), 1 / 3))  # CrossEntropyLoss allows 1
        members = [batchmix.CutMix(num_classes=3), batchmix.MixUp(num_classes=3)]
        for p in (torch.tensor([1.0, 3.0]), np.array([1, 3])):
            assert batchmix.RandomMix(members, p=p).p == [0.25, 0.75]
        with pytest.raises(ValueError, match="CutMix: expected num_classes to be a positive int"):
            batchmix.CutMix(num_classes=np.bool_(True))

    def test_cutout_constructor(self) -> None:
        with pytest.raises(ValueError, match="CutOut: expected size to be a positive int"):
            batchmix.CutOut(size=0)
        with pytest.raises(ValueError, match="CutOut: expected value to be a number"):
            batchmix.CutOut(value="black")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"CutMix: expected box_range to be \(lo, hi\)"):
            batchmix.CutMix(box_range=(0.5, 0.2))

    @pytest.mark.parametrize("name", list(TRANSFORMS))
    @pytest.mark.parametrize(
        ("images", "labels", "error", "match"),
        [
            (
                torch.rand(3, 32, 32),
                torch.tensor([1, 2, 3]),
                ValueError,
                r"images of shape \(B, C, H, W\), got \(3, 32, 32\)",
            ),
            (
                torch.rand(4, 3, 8, 8),
                torch.tensor([1, 2, 3]),
                ValueError,
                "images and labels with the same batch size, got 4 images and 3 labels",
            ),
            (
                torch.rand(3, 3, 8, 8),
                [1, 2, 3],
                TypeError,
                "the labels to be a torch.Tensor, got list",
            ),
            (
                torch.rand(3, 3, 8, 8),
                torch.rand(3),
                ValueError,
                "1-D labels to hold integer class indices, got torch.float32",
            ),
            (
                torch.rand(3, 3, 8, 8),
                torch.tensor([1, 2, 10]),
                ValueError,
                r"class indices in \[0, 10\), got values from 1 to 10",
            ),
            (
                torch.rand(3, 3, 8, 8),
                torch.tensor([-1, 2, 3]),
                ValueError,
                r"class indices in \[0, 10\)",
            ),
            (
                torch.rand(3, 3, 8, 8),
                torch.rand(3, 5),
                ValueError,
                r"2-D labels of shape \(B, 10\), got \(3, 5\)",
            ),
            (
                torch.rand(3, 3, 8, 8),
                torch.zeros(3, 2, 2),
                ValueError,
                r"labels of shape \(B,\) with class indices",
            ),
            (
                torch.ones(3, 3, 8, 8, dtype=torch.complex64),
                torch.tensor([1, 2, 3]),
                TypeError,
                "real-valued images, got torch.complex64",
            ),
            (
                torch.rand(3, 3, 8, 8),
                torch.tensor(3),
                ValueError,
                r"labels of shape \(B,\) with class indices or \(B, K\) with probabilities, got \(\)",
            ),
            (
                torch.rand(3, 3, 8, 8),
                torch.ones(3, 10, dtype=torch.complex64),
                TypeError,
                "real-valued labels, got torch.complex64",
            ),
        ],
    )
    def test_bad_batches_raise_before_modifying(
        self, name: str, images: Any, labels: Any, error: type[Exception], match: str
    ) -> None:
        before = images.clone()
        transform = TRANSFORMS[name](num_classes=K, inplace=True)
        with pytest.raises(error, match=f"{TRANSFORMS[name].__name__}: expected {match}"):
            transform(images, labels)
        assert torch.equal(images, before)

    @pytest.mark.parametrize("name", list(PAIR_MIXERS))
    def test_index_labels_need_num_classes(self, name: str) -> None:
        with pytest.raises(ValueError, match="expected num_classes to be set for index labels"):
            PAIR_MIXERS[name]()(*_batch())

    @pytest.mark.parametrize("name", list(PAIR_MIXERS))
    def test_labels_not_found(self, name: str) -> None:
        with pytest.raises(ValueError, match="could not find the labels in the sample"):
            PAIR_MIXERS[name](num_classes=K)(
                {"images": torch.rand(2, 3, 4, 4), "y": torch.tensor([0, 1])}
            )
        with pytest.raises(ValueError, match="could not find the labels"):
            PAIR_MIXERS[name](num_classes=K)(torch.rand(2, 3, 4, 4))

    def test_labels_getter_returning_foreign_tensor(self) -> None:
        foreign = torch.tensor([0, 1])
        with pytest.raises(
            ValueError, match="labels_getter returned a tensor that is not part of the sample"
        ):
            batchmix.CutMix(num_classes=K, labels_getter=lambda _: foreign)(
                torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
            )

    def test_pil_images(self) -> None:
        from PIL import Image

        with pytest.raises(
            TypeError, match=r"CutMix: expected batched tensors of shape .* got a PIL image"
        ):
            batchmix.CutMix(num_classes=K)(Image.new("RGB", (4, 4)), torch.tensor([0]))

    def test_keypoints_rejected(self) -> None:
        extra = tv_tensors.KeyPoints(torch.zeros(2, 2), canvas_size=(4, 4))
        with pytest.raises(
            ValueError, match="MixUp: expected image batches and labels, got a KeyPoints"
        ):
            batchmix.MixUp(num_classes=K)(
                {"image": torch.rand(2, 3, 4, 4), "labels": torch.tensor([0, 1]), "extra": extra}
            )

    def test_different_image_sizes(self) -> None:
        with pytest.raises(ValueError, match="share one size"):
            batchmix.CutMix(num_classes=K)(
                {
                    "a": tv_tensors.Image(torch.rand(2, 3, 4, 4)),
                    "b": tv_tensors.Image(torch.rand(2, 3, 5, 5)),
                    "labels": torch.tensor([0, 1]),
                }
            )

    def test_no_images(self) -> None:
        with pytest.raises(ValueError, match="expected at least one image tensor"):
            batchmix.CutMix(num_classes=K)({"labels": torch.tensor([0, 1]), "name": "x"})

    def test_cuda_generator_rejected(self) -> None:
        class FakeDevice:
            type = "cuda"

        class NotCpu(torch.Generator):
            @property
            def device(self) -> Any:  # type: ignore[override]
                return FakeDevice()

        with pytest.raises(ValueError, match="expected a CPU generator"):
            batchmix.CutMix(generator=NotCpu())


@pytest.mark.parametrize("cls", [batchmix.MixUp, batchmix.CutMix, batchmix.CutOut])
def test_apply_decisions_of_subclasses_are_used(cls: type) -> None:
    class EveryOther(cls):  # type: ignore[misc, valid-type]
        def _draw_applied(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
            self.calls = getattr(self, "calls", 0) + 1
            return torch.full((count,), self.calls % 2 == 0)

    kwargs = {"size": 4} if cls is batchmix.CutOut else {"num_classes": 3}
    t = EveryOther(**kwargs)
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    first, _ = t(images, labels)
    second, _ = t(images, labels)
    assert torch.equal(first, images)  # first decision: not applied
    assert not torch.equal(second, images)


@pytest.mark.parametrize(
    "name",
    [
        "CutMix",
        "MixUp",
        "CutOut",
        "ResizeMix",
        "FMix",
        "GridMix",
        "SaliencyMix",
        "Mosaic",
        "Jigsaw",
    ],
)
@pytest.mark.parametrize("size", [8, 128])
@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_images_that_require_grad(name: str, size: int, mode: str) -> None:
    # As with torchvision's transforms, the mix is recorded by autograd and gives the values
    # of the same call on images that do not require grad.
    images, labels = torch.rand(4, 3, size, size), torch.tensor([0, 1, 2, 3])
    leaf = images.clone().requires_grad_()
    kwargs = {} if name in ("CutOut", "Jigsaw") else {"mode": mode}
    t = getattr(batchmix, name)(num_classes=K, generator=torch.Generator().manual_seed(3), **kwargs)
    expected, expected_rows = t(images, labels)
    t.generator.manual_seed(3)
    mixed, rows = t(leaf, labels)
    assert mixed.requires_grad and torch.equal(mixed.detach(), expected)
    assert torch.equal(rows, expected_rows)
    mixed.sum().backward()
    assert leaf.grad is not None and leaf.grad.shape == leaf.shape


class TestDropInEdges:
    """Where torchvision accepts or refuses something, batchmix does too, or says why not."""

    @pytest.mark.parametrize("name", list(PAIR_MIXERS))
    def test_labels_getter_none_is_refused_where_labels_are_mixed(self, name: str) -> None:
        images, labels = _batch(4, 8)
        before = images.clone()
        transform = PAIR_MIXERS[name](num_classes=K, labels_getter=None, inplace=True)
        for sample in ((images, labels), ({"image": images, "labels": labels},), (images,)):
            with pytest.raises(ValueError, match="expected labels to mix, got labels_getter=None"):
                transform(*sample)
        assert torch.equal(images, before)

    def test_labels_getter_none_where_nothing_needs_labels(self) -> None:
        images, labels = _batch(4, 8)
        out_images, out_labels = batchmix.CutOut(size=4, labels_getter=None)(images, labels)
        assert out_labels is labels and out_images.shape == images.shape
        masks = tv_tensors.Mask(torch.randint(0, 3, (4, 8, 8)))
        mixed, mixed_masks = batchmix.CutMix(labels_getter=None)(images, masks)
        assert isinstance(mixed_masks, tv_tensors.Mask) and mixed.shape == images.shape

    @pytest.mark.parametrize(
        "factory",
        [
            lambda: batchmix.CutMix(num_classes=K),
            lambda: batchmix.CutMix(num_classes=K, mode="sample"),
            lambda: batchmix.CutOut(size=4),
            lambda: batchmix.FMix(num_classes=K),
            lambda: batchmix.GridMix(num_classes=K),
            lambda: batchmix.SaliencyMix(num_classes=K),
            lambda: batchmix.Mosaic(num_classes=K, mode="sample"),
            lambda: batchmix.Jigsaw(grid=(2, 2)),
        ],
    )
    @pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.int64, torch.bool])
    def test_pixel_moving_mixers_take_any_real_dtype(
        self, factory: Callable[[], Any], dtype: torch.dtype
    ) -> None:
        g = torch.Generator().manual_seed(0)
        if dtype == torch.bool:
            pixels = torch.randint(0, 2, (6, 3, 16, 16), generator=g)
        else:  # the whole range (int64: a range float64 holds exactly, for the reference)
            info = torch.iinfo(dtype)
            low, high = (info.min, info.max) if dtype != torch.int64 else (-(2**52), 2**52)
            pixels = torch.randint(low, high, (6, 3, 16, 16), generator=g, dtype=torch.int64)
        labels = torch.arange(6) % K
        transform = factory()
        torch.manual_seed(0)
        mixed, rows = transform(pixels.to(dtype), labels)
        torch.manual_seed(0)
        reference, reference_rows = transform(pixels.double(), labels)
        assert mixed.dtype == dtype
        assert torch.equal(mixed.double(), reference)
        assert torch.equal(rows, reference_rows)

    @pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
    def test_resizemix_rounds_wide_integers_exactly(self, dtype: torch.dtype) -> None:
        g = torch.Generator().manual_seed(0)
        info = torch.iinfo(dtype)
        pixels = torch.randint(info.min, info.max, (4, 3, 16, 16), generator=g, dtype=dtype)
        pixels[1] = info.max  # the top value must not wrap around
        index, box = torch.tensor([1, 0, 3, 2]), (2, 3, 10, 9)
        mixed = batchmix.functional.resizemix(pixels, index, box)
        # No wrap-around; int64 near its top keeps float64's precision (steps of 1024 there).
        top = int(mixed[0].max())
        assert top == info.max if dtype == torch.int32 else info.max - 1024 <= top <= info.max
        assert int(mixed.min()) >= info.min
        if dtype == torch.int32:  # float64 holds every int32: the float64 path, rounded
            reference = batchmix.functional.resizemix(pixels.double(), index, box).round()
            assert torch.equal(mixed.double(), reference)

    def test_transplantation_takes_integer_images(self) -> None:
        g = torch.Generator().manual_seed(0)
        pixels = torch.randint(0, 9, (4, 3, 8, 8), generator=g)
        masks = tv_tensors.Mask(torch.randint(0, 3, (4, 8, 8), generator=g))
        torch.manual_seed(0)
        mixed, _ = batchmix.Transplantation()(pixels.to(torch.int32), masks)
        torch.manual_seed(0)
        reference, _ = batchmix.Transplantation()(pixels.double(), masks)
        assert mixed.dtype == torch.int32 and torch.equal(mixed.double(), reference)

    def test_mixup_refuses_integer_images(self) -> None:
        images = torch.randint(0, 9, (4, 3, 8, 8), dtype=torch.int32)
        with pytest.raises(
            TypeError, match=r"MixUp: expected floating or uint8 images \(it blends"
        ):
            batchmix.MixUp(num_classes=K)(images, torch.arange(4))

    @pytest.mark.parametrize("mode", ["batch", "sample"])
    def test_random_mix_with_mixup_refuses_integer_images_on_every_call(self, mode: str) -> None:
        members = [
            batchmix.MixUp(num_classes=K, mode=mode, p=0.0),  # type: ignore[arg-type]
            batchmix.CutMix(num_classes=K, mode=mode),  # type: ignore[arg-type]
        ]
        mix = batchmix.RandomMix(members, p=[1e-9, 1.0], mode=mode)  # type: ignore[arg-type]
        images = torch.randint(0, 9, (4, 3, 8, 8), dtype=torch.int32)
        message = (
            "RandomMix: expected floating or uint8 images, since its member MixUp blends "
            "pixels, got torch.int32"
        )
        for _ in range(3):  # CutMix is drawn nearly always; the refusal does not depend on it
            with pytest.raises(TypeError, match=message):
                mix(images, torch.arange(4))
        collate = batchmix.MixCollate(mix)
        samples = [(torch.zeros(3, 8, 8, dtype=torch.int32), k) for k in range(4)]
        with pytest.raises(TypeError, match=message):
            collate(samples)
        never = batchmix.RandomMix(members, p=[0.0, 1.0], mode=mode)  # type: ignore[arg-type]
        mixed, _ = never(images, torch.arange(4))  # MixUp is never drawn: nothing to refuse
        assert mixed.dtype == torch.int32

    def test_scalar_tensors_as_arguments(self) -> None:
        mixup = batchmix.MixUp(
            num_classes=torch.tensor(K), alpha=torch.tensor(0.5), p=torch.tensor(1.0)
        )
        assert mixup.num_classes == K and mixup.alpha == 0.5 and isinstance(mixup.alpha, float)
        with pytest.raises(ValueError, match=r"MixUp: expected alpha in \(0, inf\), got -1.0"):
            batchmix.MixUp(alpha=torch.tensor(-1.0))
        with pytest.raises(ValueError, match="expected num_classes to be a positive int"):
            batchmix.MixUp(num_classes=torch.tensor([3, 4]))
        t = torch.tensor
        assert batchmix.CutOut(size=t(8), value=t(0.5)).size == 8
        assert batchmix.Jigsaw(grid=(t(2), t(3))).grid == (2, 3)
        assert batchmix.GridMix(grid=(t(2), t(4))).grid == (2, 4)
        assert batchmix.CutMix(box_range=(t(0.25), t(0.5))).box_range == (0.25, 0.5)
        with pytest.raises(ValueError, match="CutOut: expected size to be a positive int"):
            batchmix.CutOut(size=t(8.5))

    def test_inplace_refuses_unwritable_batches_before_writing_any(self) -> None:
        images, labels = _batch(4, 8)
        first = tv_tensors.Image(images.clone())
        leaf = tv_tensors.Image(torch.rand(4, 3, 8, 8, requires_grad=True))
        transform = batchmix.MixUp(num_classes=K, inplace=True)
        with pytest.raises(ValueError, match="leaf tensor that requires grad"):
            transform(first, labels, leaf)
        assert torch.equal(first, images)
        expanded = torch.rand(1, 3, 8, 8).expand(4, 3, 8, 8)
        with pytest.raises(ValueError, match="elements share memory"):
            batchmix.CutMix(num_classes=K, inplace=True)(expanded, labels)
        with torch.no_grad():  # allowed there, as for any in-place op
            transform(torch.rand(4, 3, 8, 8, requires_grad=True), labels)
        # Refused whatever the draw, and before drawing: with 0 < p < 1 every call is refused
        # and the generator's stream is left as it was.
        generator = torch.Generator().manual_seed(5)
        sometimes = batchmix.CutMix(num_classes=K, p=0.5, inplace=True, generator=generator)
        for _ in range(8):
            with pytest.raises(ValueError, match="elements share memory"):
                sometimes(expanded, labels)
        assert torch.equal(generator.get_state(), torch.Generator().manual_seed(5).get_state())
        # RandomMix refuses before drawing its member, whichever member would be drawn, in
        # every mode; members that never write (p=0, weight 0, out of place) do not count.
        for mode in ("batch", "sample", "pair"):
            generator = torch.Generator().manual_seed(5)
            pair = dict(mode="pair", partner="flip") if mode == "pair" else {}
            members = [
                batchmix.CutMix(num_classes=K, inplace=True, generator=generator, **pair),
                batchmix.CutMix(num_classes=K, p=0.0, inplace=True, generator=generator, **pair),
            ]
            choose = batchmix.RandomMix(members, generator=generator, mode=mode)
            for _ in range(8):
                with pytest.raises(ValueError, match="RandomMix: expected batches that can be"):
                    choose.mix_batch(expanded, labels, inplace=True)
            assert torch.equal(generator.get_state(), torch.Generator().manual_seed(5).get_state())
        leaf = torch.rand(4, 3, 8, 8, requires_grad=True)
        never = batchmix.RandomMix(
            [batchmix.CutMix(num_classes=K, inplace=True), batchmix.MixUp(num_classes=K, p=0.0)],
            p=[0.0, 1.0],
        )
        assert never.mix_batch(leaf, labels, inplace=None)[0] is leaf

        # A subclass that draws its own apply decisions may write whatever its p says.
        class Always(batchmix.CutMix):
            def _draw_applied(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
                return torch.ones(count, dtype=torch.bool)

        with pytest.raises(ValueError, match="elements share memory"):
            Always(num_classes=K, p=0.0, inplace=True)(expanded, labels)
        # Nothing ever written, nothing refused: p=0, a disabled transform, CutOut's masks.
        leaf = torch.rand(4, 3, 8, 8, requires_grad=True)
        assert batchmix.CutMix(num_classes=K, p=0.0, inplace=True)(leaf, labels)[0] is leaf
        disabled = batchmix.CutMix(num_classes=K, inplace=True)
        disabled.enabled = False
        assert disabled(leaf, labels)[0] is leaf
        masks = tv_tensors.Mask(torch.zeros(1, 8, 8, dtype=torch.long).expand(4, 8, 8))
        out = batchmix.CutOut(size=3, inplace=True)(images.clone(), masks)
        assert out[1] is masks

    def test_boxes_in_batch_level_forms_get_clear_errors(self) -> None:
        images, labels = _batch(4, 8)
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor([[0, 0, 2, 2]] * 4), format="XYXY", canvas_size=(8, 8)
        )
        cutmix = batchmix.CutMix(num_classes=K)
        with pytest.raises(ValueError, match="expected the image batch beside the detection"):
            cutmix({"image": tv_tensors.Image(images), "boxes": boxes, "labels": labels})
        with pytest.raises(ValueError, match=r"one detection target per sample .* got 1 for a"):
            cutmix(tv_tensors.Image(images), boxes)

    def test_plain_tensor_masks_get_a_hint(self) -> None:
        images, masks = torch.rand(4, 3, 8, 8), torch.randint(0, 3, (4, 8, 8))
        with pytest.raises(ValueError, match=r"masks must be wrapped as tv_tensors\.Mask"):
            batchmix.Transplantation()(images, masks)
        mixed, out_masks = batchmix.Transplantation()(images, tv_tensors.Mask(masks))
        assert isinstance(out_masks, tv_tensors.Mask) and mixed.shape == images.shape

"""Mixing inside the DataLoader, the seed's three usage patterns, and worker randomness."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision import tv_tensors
from torchvision.transforms import v2

import batchmix
import batchmix.collate
from batchmix import _fast

K = 10


class Alternating(Dataset[tuple[torch.Tensor, int]]):
    """Even items are black images of class 0, odd items white images of class 1.

    In a batch of two, MixUp's output pixel for the white sample equals its λ, so each batch
    reveals the λ it was mixed with.
    """

    def __init__(self, length: int = 16, size: int = 4) -> None:
        self.length = length
        self.size = size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((3, self.size, self.size), float(i % 2)), i % 2


def _lambdas(loader: DataLoader[Any]) -> list[float]:
    return [float(images[1, 0, 0, 0]) for images, _ in loader]


def _loader(transform: Any, seed: int | None, workers: int = 2) -> DataLoader[Any]:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(
        Alternating(),
        batch_size=2,
        num_workers=workers,
        collate_fn=batchmix.MixCollate(transform),
        generator=generator,
    )


def _collate_then_mix(batch: list[Any]) -> Any:
    """The seed's collate function, written at module level so it pickles."""
    return _SEED_MIX(*default_collate(batch))


_SEED_MIX = v2.RandomChoice([batchmix.CutMix(num_classes=K), batchmix.MixUp(num_classes=K)])


class TestMixCollate:
    def test_picklable_and_mixes(self) -> None:
        collate = pickle.loads(pickle.dumps(batchmix.MixCollate(batchmix.CutMix(num_classes=K))))
        images, labels = collate([(torch.rand(3, 8, 8), 1), (torch.rand(3, 8, 8), 2)])
        assert images.shape == (2, 3, 8, 8) and labels.shape == (2, K)

    def test_mixes_the_collated_batch_in_place(self) -> None:
        seen: dict[str, int] = {}

        def collate(batch: list[Any]) -> Any:
            images, labels = default_collate(batch)
            seen["ptr"] = images.data_ptr()
            return images, labels

        mix = batchmix.MixCollate(batchmix.MixUp(num_classes=K), collate_fn=collate)
        images, _ = mix([(torch.rand(3, 4, 4), 0), (torch.rand(3, 4, 4), 1)])
        assert images.data_ptr() == seen["ptr"]

    def test_plain_callables_are_called(self) -> None:
        mix = batchmix.MixCollate(lambda batch: ("called", batch))
        assert mix([1, 2])[0] == "called"

    def test_errors(self) -> None:
        with pytest.raises(TypeError, match="MixCollate: expected a callable transform"):
            batchmix.MixCollate(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="MixCollate: expected a callable collate_fn"):
            batchmix.MixCollate(batchmix.MixUp(), collate_fn=None)  # type: ignore[arg-type]

    @pytest.mark.parametrize("explicit_generator", [False, True], ids=["global-rng", "generator"])
    def test_workers_draw_differently_and_runs_reproduce(self, explicit_generator: bool) -> None:
        def transform() -> batchmix.MixUp:
            g = torch.Generator().manual_seed(123) if explicit_generator else None
            return batchmix.MixUp(num_classes=2, generator=g)

        first = _lambdas(_loader(transform(), seed=0))
        again = _lambdas(_loader(transform(), seed=0))
        other = _lambdas(_loader(transform(), seed=1))
        assert len(set(first)) == len(first), f"workers repeated draws: {first}"
        assert first == again
        assert first != other


class _WorkerDraws(torch.utils.data.Dataset[tuple[float, float]]):
    """Each item: a draw of the worker's global RNG and one of a generator seeded with 0, as
    batchmix forks it in that worker."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[float, float]:
        from batchmix import sampling

        own = torch.Generator().manual_seed(torch.initial_seed())
        forked = sampling.resolve_generator(torch.Generator().manual_seed(0))
        assert forked is not None
        fork = torch.Generator().manual_seed(forked.initial_seed())
        return float(torch.rand(1, generator=own)), float(torch.rand(1, generator=fork))


def test_a_generator_seeded_with_0_does_not_replay_the_workers_global_rng() -> None:
    loader = DataLoader(_WorkerDraws(), batch_size=None, num_workers=2)
    for own, forked in loader:
        assert own != forked


def test_spawned_workers_draw_as_forked_ones() -> None:
    """Workers started by spawn or forkserver (macOS's and Windows' default, and Linux's from
    Python 3.14) unpickle the transform and its generator, and draw what forked ones draw:
    CutMix from an explicit generator, MixUp and the choice between them from the global RNG."""
    import torch.multiprocessing as mp

    samples = [
        (
            torch.randint(
                0, 256, (3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(i)
            ),
            i % K,
        )
        for i in range(32)
    ]

    def batches(context: str) -> list[Any]:
        g = torch.Generator().manual_seed(7)
        mixer = batchmix.RandomMix(
            [batchmix.CutMix(num_classes=K, generator=g), batchmix.MixUp(num_classes=K)]
        )
        loader = DataLoader(
            samples,
            batch_size=8,
            num_workers=2,
            collate_fn=batchmix.MixCollate(mixer),
            multiprocessing_context=context,
            generator=torch.Generator().manual_seed(0),
        )
        return list(loader)

    # Sharing tensors with spawned workers through file descriptors, torch's default, is
    # refused by some sandboxes; named files work everywhere.
    strategy = mp.get_sharing_strategy()
    mp.set_sharing_strategy("file_system")
    try:
        forked = batches("fork")
        for context in ("spawn", "forkserver"):
            started = batches(context)
            assert len(started) == len(forked) == 4
            for (a, ya), (b, yb) in zip(forked, started, strict=True):
                assert torch.equal(a, b) and torch.equal(ya, yb)
    finally:
        mp.set_sharing_strategy(strategy)
    unmixed = [torch.stack([s for s, _ in samples[8 * k : 8 * k + 8]]) for k in range(4)]
    assert all(not torch.equal(x, plain) for (x, _), plain in zip(forked, unmixed, strict=True))


def _general(samples: list[Any]) -> Any:
    """default_collate, but not the same object: MixCollate then stacks and mixes the stack."""
    return default_collate(samples)


def _make(kind: str, seed: int, mode: str, p: float) -> Any:
    def g() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    pair = {"num_classes": K, "mode": mode, "p": p}
    if kind == "cutmix":
        return batchmix.CutMix(generator=g(), **pair)  # type: ignore[arg-type]
    if kind == "mixup":
        return batchmix.MixUp(generator=g(), **pair)  # type: ignore[arg-type]
    if kind == "cutout":
        return batchmix.CutOut(size=3, num_classes=K, p=p, generator=g())
    if kind == "saliencymix":
        return batchmix.SaliencyMix(num_classes=K, p=p, generator=g())
    members = [
        batchmix.CutMix(generator=g(), **pair),  # type: ignore[arg-type]
        batchmix.MixUp(generator=g(), **pair),  # type: ignore[arg-type]
        lambda batch: (batch[0] * 0.5, batch[1]),
    ]
    return batchmix.RandomMix(members, generator=g())


def _sample(
    i: int, dtype: torch.dtype, layout: str, channels: int, label: str
) -> tuple[torch.Tensor, Any]:
    g = torch.Generator().manual_seed(i)
    image = torch.randint(0, 256, (6, 7, channels), generator=g)
    pixels = (image / 255).to(dtype) if dtype.is_floating_point else image.to(dtype)
    channels_last = layout in ("hwc", "image") or (layout == "mixed" and i % 2 == 1)
    view = pixels.permute(2, 0, 1)
    if layout == "image":  # what v2.ToImage() makes of a PIL image
        view = tv_tensors.Image(view)
        assert view.stride() == (1, 7 * channels, channels)
    target: Any = {"int": i % K, "tensor": torch.tensor(i % K), "one-hot": None}[label]
    if label == "one-hot":
        target = torch.nn.functional.one_hot(torch.tensor(i % K), K).float()
    return (view if channels_last else view.contiguous()), target


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def _check(make: Any, samples: list[Any]) -> Any:
    """MixCollate(make()) on ``samples`` gives what the general path gives, errors included,
    and draws the same random numbers."""

    def run(collate_fn: Any) -> Any:
        torch.manual_seed(0)
        try:
            out = batchmix.MixCollate(make(), collate_fn=collate_fn)(samples)
        except Exception as error:
            out = (type(error), str(error))
        return out, torch.rand(1)

    (fused, after), (general, expected_after) = run(default_collate), run(_general)
    assert torch.equal(after, expected_after), "the paths drew different random numbers"
    assert type(fused) is type(general)
    if isinstance(fused, list):
        for a, b in zip(fused, general, strict=True):
            assert type(a) is type(b)
            assert _same(a, b) if isinstance(a, torch.Tensor) else a == b
    else:
        assert fused == general
    return fused


class TestMixCollateBuildsTheBatchOnce:
    """MixCollate mixes ``(image, label)`` samples while stacking them: the batch equals
    ``default_collate`` then the transform, for every transform, dtype, layout and label."""

    @given(
        kind=st.sampled_from(["cutmix", "mixup", "cutout", "saliencymix", "randommix"]),
        mode=st.sampled_from(["batch", "sample"]),
        p=st.sampled_from([1.0, 0.5, 0.0]),
        dtype=st.sampled_from([torch.uint8, torch.float32, torch.float64]),
        layout=st.sampled_from(["chw", "hwc", "mixed", "image"]),
        channels=st.sampled_from([1, 3, 4]),
        label=st.sampled_from(["int", "tensor", "one-hot"]),
        batch=st.integers(1, 6),
        seed=st.integers(0, 2**16),
    )
    def test_equals_collate_then_mix(
        self,
        kind: str,
        mode: str,
        p: float,
        dtype: torch.dtype,
        layout: str,
        channels: int,
        label: str,
        batch: int,
        seed: int,
    ) -> None:
        samples = [_sample(seed + i, dtype, layout, channels, label) for i in range(batch)]
        fused = batchmix.MixCollate(_make(kind, seed, mode, p))(samples)
        general = batchmix.MixCollate(_make(kind, seed, mode, p), collate_fn=_general)(samples)
        assert _same(fused, general)
        assert fused[0].is_contiguous()

    @pytest.mark.parametrize("kind", ["cutmix", "mixup"])
    def test_the_loops_build_the_batch(self, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
        taken: list[str] = []
        for name in ("mixup_gather", "cutmix_gather"):
            original = getattr(_fast, name)

            def spy(*args: Any, _original: Any = original, _name: str = name) -> bool:
                done = bool(_original(*args))
                if done:
                    taken.append(_name)
                return done

            monkeypatch.setattr(_fast, name, spy)
        for layout in ("hwc", "image"):
            samples = [_sample(i, torch.uint8, layout, 3, "int") for i in range(4)]
            images, _ = batchmix.MixCollate(_make(kind, 0, "sample", 1.0))(samples)
            assert type(images) is torch.Tensor
        assert taken == [f"{kind}_gather"] * 2

    def test_in_a_worker_the_batch_is_in_shared_memory(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        samples = [_sample(i, torch.uint8, "hwc", 3, "int") for i in range(4)]
        images, _ = batchmix.MixCollate(batchmix.MixUp(num_classes=K))(samples)
        assert not images.is_shared()
        monkeypatch.setattr(batchmix.collate, "get_worker_info", lambda: object())
        images, _ = batchmix.MixCollate(batchmix.MixUp(num_classes=K))(samples)
        assert images.is_shared()

    @pytest.mark.parametrize("kind", ["cutmix", "mixup", "randommix"])
    def test_dataloader_workers_give_the_general_path_batches(self, kind: str) -> None:
        dataset = [_sample(i, torch.uint8, "hwc", 3, "int") for i in range(12)]

        def batches(collate_fn: Any) -> list[Any]:
            loader = DataLoader(
                dataset,
                batch_size=4,
                num_workers=2,
                collate_fn=collate_fn,
                generator=torch.Generator().manual_seed(5),
            )
            return list(loader)

        fused = batches(batchmix.MixCollate(_make(kind, 1, "sample", 1.0)))
        general = batches(batchmix.MixCollate(_make(kind, 1, "sample", 1.0), collate_fn=_general))
        assert len(fused) == 3 and _same(fused, general)

    @pytest.mark.parametrize(
        "samples",
        [
            [
                {"image": torch.rand(3, 4, 4), "label": 1},
                {"image": torch.rand(3, 4, 4), "label": 2},
            ],
            [
                (tv_tensors.Image(torch.rand(3, 4, 4)), 1),
                (tv_tensors.Image(torch.rand(3, 4, 4)), 2),
            ],
            [(torch.rand(3, 4, 4), 1, "a"), (torch.rand(3, 4, 4), 2, "b")],
            [(torch.rand(3, 4, 4), 1), (torch.rand(3, 4, 4).double(), 2)],
        ],
        ids=["dict", "videos", "triple", "mixed-dtypes"],
    )
    def test_other_samples_take_the_general_path(self, samples: list[Any]) -> None:
        def run(collate_fn: Any) -> Any:
            transform = batchmix.MixUp(num_classes=K, generator=torch.Generator().manual_seed(0))
            try:
                return batchmix.MixCollate(transform, collate_fn=collate_fn)(samples)
            except Exception as error:  # both paths must fail alike
                return type(error), str(error)

        fused, general = run(default_collate), run(_general)
        if isinstance(fused, dict):
            assert fused.keys() == general.keys()
            assert all(_same(fused[k], general[k]) for k in fused)
        else:
            assert _same(fused, general)

    def test_what_the_one_pass_path_must_not_assume(self) -> None:
        images = [torch.rand(3, 5, 6) for _ in range(4)]
        one_hot = torch.nn.functional.one_hot(torch.arange(4), K).float()
        # A labels_getter that finds the labels elsewhere than after the images.
        flipped = [(one_hot[i], images[i]) for i in range(4)]
        _check(lambda: batchmix.MixUp(labels_getter=lambda s: s[0]), flipped)
        _check(lambda: batchmix.CutMix(labels_getter=lambda s: s[0]), flipped)

        # Subclasses: parameters that read the pixels, and mix_batch overrides.
        class PixelAware(batchmix.MixUp):
            def make_params(self, *args: Any, images: Any = None) -> Any:
                params = super().make_params(*args, images=images)
                lam = float(images.mean().clamp(0, 1))  # type: ignore[union-attr]
                return params and batchmix.MixParams(index=params.index, lam=lam)

        class Custom(batchmix.RandomMix):
            def mix_batch(self, *inputs: Any, inplace: bool | None = None) -> Any:
                return "custom"

        samples = [(images[i], i) for i in range(4)]
        _check(lambda: PixelAware(num_classes=K), samples)
        _check(lambda: Custom([batchmix.MixUp(num_classes=K)]), samples)
        # Strings stay a tuple; ZeroTensors (no memory behind them) are stacked by PyTorch.
        _check(
            lambda: batchmix.CutOut(labels_getter=None),
            [(x, f"f{i}") for i, x in enumerate(images)],
        )
        zeros = [(torch._efficientzerotensor((3, 5, 6)), i) for i in range(4)]
        _check(lambda: batchmix.MixUp(num_classes=K), zeros)
        # Sparse and nested images fail with default_collate's errors.
        sparse = [(x.to_sparse(), i) for i, x in enumerate(images)]
        _check(lambda: batchmix.MixUp(num_classes=K), sparse)
        nested = [
            (torch.nested.nested_tensor([x, x[:, :2]], layout=torch.jagged), i)
            for i, x in enumerate(images)
        ]
        _check(lambda: batchmix.CutOut(num_classes=K), nested)
        # tv_tensors.set_return_type("TVTensor") makes default_collate return an Image.
        pictures = [(tv_tensors.Image(x), i) for i, x in enumerate(images)]
        with tv_tensors.set_return_type("TVTensor"):
            fused = _check(lambda: batchmix.MixUp(num_classes=K), pictures)
        assert type(fused[0]) is tv_tensors.Image

    def test_errors_are_those_of_the_general_path(self) -> None:
        for bad_label, error in [(K, ValueError), (0.5, ValueError)]:
            samples = [(torch.rand(3, 4, 4), 1), (torch.rand(3, 4, 4), bad_label)]
            for collate_fn in (default_collate, _general):
                collate = batchmix.MixCollate(batchmix.CutMix(num_classes=K), collate_fn=collate_fn)
                with pytest.raises(error, match="CutMix: expected"):
                    collate(samples)
        shapes = [(torch.rand(3, 4, 4), 1), (torch.rand(3, 5, 4), 2)]
        with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
            batchmix.MixCollate(batchmix.CutMix(num_classes=K))(shapes)

    def test_without_the_compiled_loops(self, monkeypatch: pytest.MonkeyPatch) -> None:
        samples = [_sample(i, torch.uint8, "hwc", 3, "int") for i in range(5)]
        expected = batchmix.MixCollate(_make("mixup", 3, "sample", 1.0))(samples)
        monkeypatch.setattr(_fast, "ENABLED", False)
        assert _same(batchmix.MixCollate(_make("mixup", 3, "sample", 1.0))(samples), expected)


class TestSeedUsagePatterns:
    """The three ways the seed document uses v2.CutMix/MixUp, with batchmix in their place."""

    def test_after_the_dataloader(self) -> None:
        dataset = [(torch.rand(3, 32, 32), i % K) for i in range(8)]
        dataloader = DataLoader(dataset, batch_size=4, shuffle=True)
        cutmix_or_mixup = v2.RandomChoice(
            [batchmix.CutMix(num_classes=K), batchmix.MixUp(num_classes=K)]
        )
        for images, labels in dataloader:
            assert labels.shape == (4,)
            images, labels = cutmix_or_mixup(images, labels)
            assert images.shape == (4, 3, 32, 32) and labels.shape == (4, K)
            packed = cutmix_or_mixup((images, torch.randint(0, K, (4,))))
            assert packed[1].shape == (4, K)
            loss = torch.nn.functional.cross_entropy(torch.randn(4, K), labels)
            assert torch.isfinite(loss)

    @pytest.mark.parametrize(
        "collate_fn",
        [_collate_then_mix, batchmix.MixCollate(_SEED_MIX)],
        ids=["seed", "MixCollate"],
    )
    def test_inside_collate_with_workers(self, collate_fn: Any) -> None:
        dataset = [(torch.rand(3, 16, 16), i % K) for i in range(8)]
        dataloader = DataLoader(
            dataset, batch_size=4, shuffle=True, num_workers=2, collate_fn=collate_fn
        )
        shapes = [(tuple(images.shape), tuple(labels.shape)) for images, labels in dataloader]
        assert shapes == [((4, 3, 16, 16), (4, K))] * 2

    def test_nested_dict_with_labels_getter(self) -> None:
        batch = {
            "imgs": torch.rand(4, 3, 224, 224),
            "target": {
                "classes": torch.randint(0, 100, size=(4,)),
                "some_other_key": "this is going to be passed-through",
            },
        }
        out = batchmix.CutMix(num_classes=100, labels_getter=lambda b: b["target"]["classes"])(
            batch
        )
        assert out["imgs"].shape == (4, 3, 224, 224)
        assert out["target"]["classes"].shape == (4, 100)
        assert out["target"]["some_other_key"] == "this is going to be passed-through"


class Segmented(Dataset[dict[str, Any]]):
    """Samples whose image and mask both hold the sample's id: origins can be read off."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "image": torch.full((3, 16, 16), float(i)),
            "mask": tv_tensors.Mask(torch.full((16, 16), i, dtype=torch.uint8)),
            "label": i,
        }


@pytest.mark.parametrize("workers", [0, 1])
def test_masks_stay_masks_and_move_with_the_images(workers: int) -> None:
    transform = batchmix.CutMix(num_classes=K, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(
        Segmented(), batch_size=4, num_workers=workers, collate_fn=batchmix.MixCollate(transform)
    )
    moved = 0
    for batch in loader:
        assert isinstance(batch["mask"], tv_tensors.Mask) and batch["label"].shape == (4, K)
        assert torch.equal(batch["mask"].float(), batch["image"][:, 0])  # moved together
        moved += int((batch["mask"] != batch["mask"][:, :1, :1]).any())
    assert moved > 0  # some boxes were pasted
    # default_collate alone loses the Mask type (torchvision's behaviour), which is why.
    assert type(default_collate([Segmented()[0], Segmented()[1]])["mask"]) is torch.Tensor


@pytest.mark.parametrize("form", ["dict", "mask"], ids=["(image, {label, mask})", "(image, mask)"])
def test_masks_in_the_second_item_stay_masks(form: str) -> None:
    # The one-pass path collates the second item; masks there must stay masks, as on the
    # general path (stack, then mix), and move with the images.
    def sample(k: int) -> tuple[torch.Tensor, Any]:
        mask = tv_tensors.Mask(torch.full((6, 6), k, dtype=torch.long))
        image = torch.full((3, 6, 6), float(k))
        return (image, {"label": k, "mask": mask}) if form == "dict" else (image, mask)

    samples = [sample(k) for k in range(4)]
    transform = (
        batchmix.CutMix(num_classes=K, generator=torch.Generator().manual_seed(0))
        if form == "dict"
        else batchmix.Transplantation(generator=torch.Generator().manual_seed(0))
    )
    reference = type(transform)(**({"num_classes": K} if form == "dict" else {}))
    reference.generator = torch.Generator().manual_seed(0)
    out = batchmix.MixCollate(transform)(samples)
    expected = reference(batchmix.collate._collate_keeping_masks(samples))
    masks = out[1]["mask"] if form == "dict" else out[1]
    expected_masks = expected[1]["mask"] if form == "dict" else expected[1]
    assert isinstance(masks, tv_tensors.Mask)
    assert torch.equal(masks, expected_masks) and torch.equal(out[0], expected[0])
    assert torch.equal(masks.float(), out[0][:, 0])  # moved with the pixels


def test_a_custom_collate_that_returns_the_samples_own_tensors_is_not_overwritten() -> None:
    images, labels = torch.rand(4, 3, 8, 8), torch.arange(4)
    before = images.clone()
    collate = batchmix.MixCollate(batchmix.MixUp(num_classes=K), collate_fn=lambda b: b[0])
    mixed, rows = collate([(images, labels)])  # a pre-batched dataset: one item, one batch
    assert torch.equal(images, before) and mixed is not images and rows.shape == (4, K)


def test_any_image_sample_sets_the_return_type() -> None:
    samples = [(torch.rand(3, 4, 4), 0), (tv_tensors.Image(torch.rand(3, 4, 4)), 1)]
    with tv_tensors.set_return_type("TVTensor"):
        expected = type(default_collate(samples)[0])
        out = batchmix.MixCollate(batchmix.CutMix(num_classes=K))(samples)
    assert expected is tv_tensors.Image and type(out[0]) is expected

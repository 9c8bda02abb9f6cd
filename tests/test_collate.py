"""Mixing inside the DataLoader, the seed's three usage patterns, and worker randomness."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2

import batchmix

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

"""Mixing inside the DataLoader: a picklable ``collate_fn`` that mixes each fresh batch in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import default_collate

from batchmix import _fast

__all__ = ["MixCollate"]


class MixCollate:
    """``collate_fn`` that collates a list of samples and mixes the resulting batch.

    The batch was just built by ``collate_fn``, so nothing else holds it and it is mixed in place
    (batchmix transforms are called with ``inplace=True``; other callables are simply called).
    The object is picklable, so it works with ``DataLoader(num_workers>0)``; in each worker the
    transforms draw from that worker's random stream (see :mod:`batchmix.sampling`).

    Workers hold a copy of the transform: to switch mixing off between epochs (``enabled``), do
    it before the epoch's iterator is created and do not use ``persistent_workers=True``.

    Constructing it loads batchmix's compiled CPU loops for uint8 and float32 batches (about
    0.6 s once per process, longer the very first time, when they are compiled), so that
    workers forked later start with them.

    Args:
        transform: a batchmix transform (or any callable taking the collated batch).
        collate_fn: builds the batch from the list of samples.

    Example:
        >>> import torch, batchmix
        >>> collate = MixCollate(batchmix.CutMix(num_classes=10))
        >>> images, labels = collate([(torch.rand(3, 8, 8), 1), (torch.rand(3, 8, 8), 2)])
        >>> labels.shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        transform: Callable[..., Any],
        collate_fn: Callable[[list[Any]], Any] = default_collate,
    ) -> None:
        if not callable(transform):
            raise TypeError(
                f"MixCollate: expected a callable transform, got {type(transform).__name__}."
            )
        if not callable(collate_fn):
            raise TypeError(
                f"MixCollate: expected a callable collate_fn, got {type(collate_fn).__name__}."
            )
        self.transform = transform
        self.collate_fn = collate_fn
        # Load the compiled loops here, in the main process, so that forked workers inherit
        # them instead of each loading them at its first batch of every epoch.
        _fast.warm_up()

    def __call__(self, samples: list[Any]) -> Any:
        batch = self.collate_fn(samples)
        mix = getattr(self.transform, "mix_batch", None)
        if mix is not None:
            return mix(batch, inplace=True)
        return self.transform(batch)

    def __repr__(self) -> str:
        return f"MixCollate(transform={self.transform!r}, collate_fn={self.collate_fn!r})"

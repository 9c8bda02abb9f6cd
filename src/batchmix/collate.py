"""Mixing inside the DataLoader: a picklable ``collate_fn`` that builds each batch mixed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import default_collate, get_worker_info
from torch.utils.data._utils.collate import collate, collate_tensor_fn, default_collate_fn_map
from torchvision import tv_tensors

from batchmix import _fast, _memory

__all__ = ["MixCollate"]


class MixCollate:
    """``collate_fn`` that collates a list of samples and mixes the resulting batch.

    The batch was just built by ``collate_fn``, so nothing else holds it and it is mixed in place
    (batchmix transforms are called with ``inplace=True``; other callables are simply called),
    unless a custom ``collate_fn`` handed back the samples' own tensors (``lambda b: b[0]`` for
    pre-batched data), which are then mixed out of place.
    The object is picklable, so it works with ``DataLoader(num_workers>0)``; in each worker the
    transforms draw from that worker's random stream (see :mod:`batchmix.sampling`).

    In the common case — ``(image, label)`` samples (tuples or lists) whose images are plain
    CPU tensors (or ``tv_tensors.Image``) of one shape and dtype, the default ``collate_fn``
    and a batchmix transform — the images are not stacked by ``default_collate`` first: the
    batch is allocated as ``default_collate`` would (in shared memory inside a worker) and
    MixUp and CutMix write it already mixed straight from the samples in one compiled pass;
    other transforms stack, then mix in place. Images stored
    channels-last (``(C, H, W)`` views of ``(H, W, C)`` pixels, as ``pil_to_tensor`` and
    ``v2.ToImage`` return them from PIL images), which ``default_collate`` copies slowly, are
    stacked several times faster, so such a loader may run faster with ``MixCollate`` than
    without it. The values, types and errors are those of ``collate_fn`` followed by the
    transform (tests compare the two), with one difference for the default ``collate_fn``:
    segmentation masks (``tv_tensors.Mask``) in the samples stay masks in the batch, where
    ``default_collate`` alone returns plain tensors that the transform would not move with the
    images. A custom ``collate_fn`` must keep them masks itself. Anything else (other structures, a custom
    ``labels_getter``, subclasses of the transforms) takes that general path, or stacks
    before calling the transform's ``mix_batch``.

    Workers hold a copy of the transform: to switch mixing off between epochs (``enabled``), do
    it before the epoch's iterator is created and do not use ``persistent_workers=True``.

    Constructing it loads batchmix's compiled CPU loops for uint8 and float32 batches (about
    0.8 s once per process; about 17 s the very first time in an environment, when they are
    compiled and cached), so that workers forked later start with them.

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
        mixed = self._mix_samples(samples)
        if mixed is not None:
            return mixed
        if self.collate_fn is default_collate:
            batch = _collate_keeping_masks(samples)
            fresh = True
        else:
            batch = self.collate_fn(samples)
            # A custom collate may hand back the samples' own tensors (``lambda b: b[0]`` for
            # pre-batched data): those are mixed out of place, never overwritten.
            fresh = not _shares_memory(batch, samples)
        mix = getattr(self.transform, "mix_batch", None)
        if mix is not None:
            return mix(batch, inplace=fresh)
        return self.transform(batch)

    def _mix_samples(self, samples: list[Any]) -> Any:
        """The common case in one pass: ``(image, label)`` samples with images of one shape,
        ``default_collate`` and a batchmix transform. CutMix and MixUp then write the mixed
        batch straight from the samples instead of stacking them and mixing the stack;
        ``None`` for anything else, which takes the general path."""
        mix = getattr(self.transform, "_mix_samples", None)
        if mix is None or self.collate_fn is not default_collate:
            return None
        images = _sample_images(samples)
        if images is None:
            return None
        batch = _new_batch(images)
        if batch is None:
            return None
        # A tuple, as default_collate passes its columns on (strings stay a tuple); masks in
        # the second item stay masks, as on the general path.
        labels = _collate_keeping_masks(tuple(sample[1] for sample in samples))  # type: ignore[arg-type]
        return mix(batch, labels, images)

    def __repr__(self) -> str:
        return f"MixCollate(transform={self.transform!r}, collate_fn={self.collate_fn!r})"


def _shares_memory(batch: Any, samples: Any) -> bool:
    """Whether any tensor of ``batch`` uses the memory of a tensor of ``samples``."""
    from torch.utils._pytree import tree_flatten

    def pointers(tree: Any) -> set[int]:
        found = set()
        for leaf in tree_flatten(tree)[0]:
            if isinstance(leaf, Tensor) and leaf.numel():
                try:
                    found.add(leaf.untyped_storage().data_ptr())
                except (RuntimeError, NotImplementedError):  # no storage of its own
                    continue
        return found

    return bool(pointers(batch) & pointers(samples))


def _collate_mask(batch: list[Tensor], **_: Any) -> Tensor:
    mask: Tensor = tv_tensors.Mask(collate_tensor_fn(batch))
    return mask


# default_collate's rules, with segmentation masks kept as masks (default_collate returns
# tv_tensors as plain tensors, which the transforms would take for something else).
_KEEPING_MASKS = {tv_tensors.Mask: _collate_mask, **default_collate_fn_map}


def _collate_keeping_masks(samples: list[Any]) -> Any:
    """``default_collate(samples)``, except that ``tv_tensors.Mask`` entries stay masks."""
    return collate(samples, collate_fn_map=_KEEPING_MASKS)


def _sample_images(samples: list[Any]) -> list[Tensor] | None:
    """The images of ``(image, label)`` samples (tuples or lists), when every image is a plain
    CPU tensor or ``tv_tensors.Image`` of one shape and dtype (what ``default_collate`` stacks
    to a plain tensor)."""
    if not isinstance(samples, list) or not samples:
        return None
    images = []
    for sample in samples:
        if type(sample) not in (tuple, list) or len(sample) != 2:
            return None
        image = sample[0]
        if type(image) is tv_tensors.Image:
            image = image.as_subclass(Tensor)
        elif type(image) is not Tensor:
            return None
        images.append(image)
    first = images[0]
    image_sample = next((s[0] for s in samples if type(s[0]) is tv_tensors.Image), None)
    if image_sample is not None and type(torch.stack([image_sample[:0]])) is not Tensor:
        return None  # tv_tensors.set_return_type("TVTensor"): default_collate returns an Image
    for image in images:
        if (
            image.shape != first.shape
            or image.dtype != first.dtype
            or not image.is_cpu
            or image.requires_grad
            or image.layout != torch.strided
            or image.is_nested
            or image.is_quantized
            or image._is_zerotensor()
        ):
            return None
    return images


def _new_batch(images: list[Tensor]) -> Tensor | None:
    """An uninitialised batch for ``images``; in a DataLoader worker, in shared memory, as
    ``default_collate`` allocates it (so that sending it to the main process copies nothing)."""
    first = images[0]
    shape = (len(images), *first.shape)
    if get_worker_info() is None:
        return _memory.empty(shape, first.dtype)
    try:
        storage = first._typed_storage()._new_shared(  # type: ignore[no-untyped-call]
            first.numel() * len(images), device=first.device
        )
        return first.new(storage).resize_(shape)
    except (AttributeError, RuntimeError, TypeError):  # private API changed: the general path
        return None

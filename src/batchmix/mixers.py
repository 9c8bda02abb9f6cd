"""More mixers: :class:`ResizeMix`, :class:`FMix`, :class:`SaliencyMix`, :class:`GridMix`,
:class:`Mosaic`, :class:`Transplantation`, and :class:`Jigsaw`, which shuffles tiles within each
image.

They share the conventions of :class:`~batchmix.CutMix` (input structures, label formats,
``mode``, ``partner``, ``p``, ``generator``, uint8/float, ``inplace``, errors), and their label
weight is always the exact share of pixels each source contributes. Segmentation masks
(``tv_tensors.Mask``) in the sample are mixed with the very same regions as the images.

Papers: ResizeMix (Qin et al., 2020), FMix (Harris et al., 2020), SaliencyMix (Uddin et al.,
ICLR 2021), GridMix (Baek et al., Pattern Recognition 2021), Mosaic (Bochkovskiy et al.,
YOLOv4, 2020), Transplantation (Sellner et al., MICCAI 2023).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from batchmix import boxes, saliency, sampling
from batchmix import functional as F
from batchmix.sampling import Mode, Partner
from batchmix.structures import LabelsGetter
from batchmix.transforms import MixParams, _BatchTransform, _KeepsLabels, _PairMixer, _scalar

__all__ = ["FMix", "GridMix", "Jigsaw", "Mosaic", "ResizeMix", "SaliencyMix", "Transplantation"]


def _check_range(
    owner: str, name: str, value: object, low: float, high: float
) -> tuple[float, float]:
    if isinstance(value, tuple | list) and len(value) == 2:
        lo, hi = value[0], value[1]
        if (
            isinstance(lo, numbers.Real)
            and isinstance(hi, numbers.Real)
            and low <= float(lo) <= float(hi) <= high
        ):
            return float(lo), float(hi)
    raise ValueError(
        f"{owner}: expected {name} to be (lo, hi) with {low:g} <= lo <= hi <= {high:g}, got {value!r}."
    )


def _batch_or_sample(
    mode: Mode, lam: Tensor, boxes: Tensor
) -> tuple[float | Tensor, F.Box | Tensor]:
    """Parameters as a float and a tuple box in batch mode, tensors in sample mode."""
    if mode == "batch":
        x1, y1, x2, y2 = (int(v) for v in boxes[0])
        return float(lam[0]), (x1, y1, x2, y2)
    return lam, boxes


@dataclass(frozen=True, kw_only=True)
class MaskParams(MixParams):
    """Parameters of a mask mixer: ``mask`` ``(n, H, W)`` is ``True`` where the partner shows."""

    mask: Tensor


@dataclass(frozen=True, kw_only=True)
class MosaicParams(MixParams):
    """Parameters of Mosaic: three more sources per sample, tile centres and area weights.

    Attributes:
        partners: ``(3, B)`` sources of the top-right, bottom-left and bottom-right tiles.
        centres: ``(cx, cy)`` for the batch or ``(B, 2)``.
        weights: ``(4, B)`` float64 pixel shares of the four tiles (own tile first).
    """

    partners: Tensor
    centres: tuple[int, int] | Tensor
    weights: Tensor


class ResizeMix(_PairMixer):
    """ResizeMix: the whole partner image, shrunk by τ ~ U(``scale``), is pasted at a uniformly
    drawn place; the label weight of the partner is the pasted area's share.

    Masks are resized with nearest neighbours, images bilinearly with antialiasing.

    Args:
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        scale: range of τ, the pasted image's side as a fraction of the image side.
        p: probability that the batch (``mode="batch"``), each sample (``"sample"``) or
            each pair (``"pair"``) is mixed.
        mode: ``"batch"`` draws one τ and place per call, ``"sample"`` one per sample,
            ``"pair"`` one per pair of partners (timm's pair mode; needs a symmetric ``partner``).
        partner: ``"roll"``, ``"flip"`` or ``"random"``, as for :class:`~batchmix.CutMix`.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule) or a callable returning the labels.

    Example:
        >>> images, labels = ResizeMix(num_classes=10)(torch.rand(4, 3, 32, 32), torch.arange(4))
        >>> labels.shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        scale: tuple[float, float] = (0.1, 0.8),
        p: float = 1.0,
        mode: Mode = "batch",
        partner: Partner = "roll",
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        inplace: bool = False,
        generator: torch.Generator | None = None,
        labels_getter: str | LabelsGetter | None = "default",
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            alpha=1.0,
            p=p,
            mode=mode,
            partner=partner,
            label_smoothing=label_smoothing,
            multi_label=multi_label,
            inplace=inplace,
            generator=generator,
            labels_getter=labels_getter,
        )
        self.scale = _check_range("ResizeMix", "scale", scale, 0.0, 1.0)

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        applied = self._draw_applied_for_mode(batch_size, generator)
        if applied is None:
            return None
        index = self._partners(batch_size, generator)
        boxes = sampling.resize_boxes(applied.shape[0], height, width, generator, self.scale)
        boxes[~applied] = 0
        lam, box_arg = _batch_or_sample(
            self.mode, 1.0 - sampling.box_area_fraction(boxes, height, width), boxes
        )
        return self._paired(MixParams(index=index, lam=lam, boxes=box_arg))

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        return F.resizemix(images, params.index, params.boxes, out=images if inplace else None)

    def _mix_boxes(
        self, targets: list[boxes.BoxTarget], params: MixParams, height: int, width: int
    ) -> list[boxes.BoxTarget]:
        out = []
        for i, (target, j) in enumerate(zip(targets, params.index.tolist(), strict=True)):
            x1, y1, x2, y2 = params.box(i)
            scale = ((x2 - x1) / width, (y2 - y1) / height)
            out.append(
                boxes.paste(target, targets[j], (x1, y1, x2, y2), self.min_box_visibility, scale)
            )
        return out

    def _mix_masks(self, masks: Tensor, params: MixParams, inplace: bool) -> Tensor:
        return F.resizemix(
            masks, params.index, params.boxes, nearest=True, out=masks if inplace else None
        )


class _MaskMixer(_PairMixer):
    """Mixers whose partner region is a pixel mask drawn from λ."""

    _mixes_boxes = False

    def _draw_masks(
        self, lam: Tensor, height: int, width: int, generator: torch.Generator | None
    ) -> Tensor:
        raise NotImplementedError

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        drawn = self._draw_lam(batch_size, generator)
        if drawn is None:
            return None
        applied, lam = drawn
        index = self._partners(batch_size, generator)
        masks = self._draw_masks(lam, height, width, generator)
        masks[~applied] = False
        share = 1.0 - masks.flatten(1).double().mean(1)
        return self._paired(
            MaskParams(
                index=index, lam=float(share[0]) if self.mode == "batch" else share, mask=masks
            )
        )

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        mask = cast(MaskParams, params).mask
        return F.mask_mix(images, params.index, mask, out=images if inplace else None)


class FMix(_MaskMixer):
    """FMix: the partner shows through a mask made by thresholding low-frequency Fourier noise
    (amplitude ∝ 1/f^``decay_power``) so that about (1−λ) of the pixels come from it; the label
    weight is the mask's exact share.

    Args:
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        alpha: Beta distribution parameter, > 0.
        decay_power: spectral decay of the noise; larger values give smoother, blobbier masks.
        p: probability that the batch (``mode="batch"``), each sample (``"sample"``) or
            each pair (``"pair"``) is mixed.
        mode: ``"batch"`` draws one λ and mask per call, ``"sample"`` one per sample,
            ``"pair"`` one per pair of partners (timm's pair mode; needs a symmetric ``partner``).
        partner: ``"roll"``, ``"flip"`` or ``"random"``, as for :class:`~batchmix.CutMix`.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule) or a callable returning the labels.

    Example:
        >>> images, labels = FMix(num_classes=10)(torch.rand(4, 3, 32, 32), torch.arange(4))
        >>> bool(torch.allclose(labels.sum(1), torch.ones(4)))
        True
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        alpha: float = 1.0,
        decay_power: float = 3.0,
        p: float = 1.0,
        mode: Mode = "batch",
        partner: Partner = "roll",
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        inplace: bool = False,
        generator: torch.Generator | None = None,
        labels_getter: str | LabelsGetter | None = "default",
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            alpha=alpha,
            p=p,
            mode=mode,
            partner=partner,
            label_smoothing=label_smoothing,
            multi_label=multi_label,
            inplace=inplace,
            generator=generator,
            labels_getter=labels_getter,
        )
        if (
            isinstance(decay_power, bool)
            or not isinstance(decay_power, numbers.Real)
            or float(decay_power) <= 0
        ):
            raise ValueError(
                f"FMix: expected decay_power to be a positive number, got {decay_power!r}."
            )
        self.decay_power: float = float(decay_power)

    def _draw_masks(
        self, lam: Tensor, height: int, width: int, generator: torch.Generator | None
    ) -> Tensor:
        return sampling.fmix_masks(lam, height, width, generator, self.decay_power)


class GridMix(_MaskMixer):
    """GridMix: the image is cut into a g×g grid (g uniform in ``grid``) and round((1−λ)·g²)
    randomly chosen cells come from the partner; the label weight is the exact pixel share.

    Args:
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        alpha: Beta distribution parameter, > 0.
        grid: inclusive range of the number of cells per side.
        p: probability that the batch (``mode="batch"``), each sample (``"sample"``) or
            each pair (``"pair"``) is mixed.
        mode: ``"batch"`` draws one λ and grid per call, ``"sample"`` one per sample,
            ``"pair"`` one per pair of partners (timm's pair mode; needs a symmetric ``partner``).
        partner: ``"roll"``, ``"flip"`` or ``"random"``, as for :class:`~batchmix.CutMix`.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule) or a callable returning the labels.

    Example:
        >>> images, labels = GridMix(num_classes=10)(torch.rand(4, 3, 32, 32), torch.arange(4))
        >>> images.shape
        torch.Size([4, 3, 32, 32])
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        alpha: float = 1.0,
        grid: tuple[int, int] = (2, 6),
        p: float = 1.0,
        mode: Mode = "batch",
        partner: Partner = "roll",
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        inplace: bool = False,
        generator: torch.Generator | None = None,
        labels_getter: str | LabelsGetter | None = "default",
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            alpha=alpha,
            p=p,
            mode=mode,
            partner=partner,
            label_smoothing=label_smoothing,
            multi_label=multi_label,
            inplace=inplace,
            generator=generator,
            labels_getter=labels_getter,
        )
        if isinstance(grid, tuple | list):
            grid = tuple(_scalar(g) for g in grid)
        valid = (
            isinstance(grid, tuple | list)
            and len(grid) == 2
            and all(isinstance(g, numbers.Integral) and not isinstance(g, bool) for g in grid)
        )
        if not valid or not 1 <= grid[0] <= grid[1]:
            raise ValueError(
                f"GridMix: expected grid to be (lo, hi) integers with 1 <= lo <= hi, got {grid!r}."
            )
        self.grid = (int(grid[0]), int(grid[1]))

    def _draw_masks(
        self, lam: Tensor, height: int, width: int, generator: torch.Generator | None
    ) -> Tensor:
        return sampling.grid_masks(lam, height, width, generator, self.grid)


class SaliencyMix(_PairMixer):
    """SaliencyMix: a CutMix box (sides from λ) centred on the partner's most salient pixel.

    The built-in saliency is the spectral residual (:func:`batchmix.saliency.spectral_residual`),
    a stand-in without OpenCV for the fine-grained static saliency of the paper's reference code;
    pass ``saliency=`` a callable mapping the image batch ``(B, C, H, W)`` to maps ``(B, H, W)``
    to use that one or your own (for instance precomputed maps
    looked up by the callable). In batch mode the one box is centred on the saliency peak of the
    first sample's partner, as in the paper's code.

    Args:
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        alpha: Beta distribution parameter, > 0.
        saliency: ``"spectral"`` or a callable returning ``(B, H, W)`` saliency maps.
        p: probability that the batch (``mode="batch"``), each sample (``"sample"``) or
            each pair (``"pair"``) is mixed.
        mode: ``"batch"`` draws one λ and box per call, ``"sample"`` one per sample,
            ``"pair"`` one per pair of partners (timm's pair mode; needs a symmetric ``partner``).
        partner: ``"roll"``, ``"flip"`` or ``"random"``, as for :class:`~batchmix.CutMix`.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule) or a callable returning the labels.

    Example:
        >>> images, labels = SaliencyMix(num_classes=10)(torch.rand(4, 3, 32, 32), torch.arange(4))
        >>> labels.shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        alpha: float = 1.0,
        saliency: str | Callable[[Tensor], Tensor] = "spectral",
        p: float = 1.0,
        mode: Mode = "batch",
        partner: Partner = "roll",
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        inplace: bool = False,
        generator: torch.Generator | None = None,
        labels_getter: str | LabelsGetter | None = "default",
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            alpha=alpha,
            p=p,
            mode=mode,
            partner=partner,
            label_smoothing=label_smoothing,
            multi_label=multi_label,
            inplace=inplace,
            generator=generator,
            labels_getter=labels_getter,
        )
        if saliency != "spectral" and not callable(saliency):
            raise ValueError(
                f"SaliencyMix: expected saliency to be 'spectral' or a callable, got {saliency!r}."
            )
        self.saliency = saliency

    def _maps(self, images: Tensor) -> Tensor:
        if callable(self.saliency):
            maps = self.saliency(images)
            expected = (images.shape[0], *images.shape[-2:])
            if not isinstance(maps, Tensor) or tuple(maps.shape) != expected:
                got = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
                raise ValueError(
                    f"SaliencyMix: expected the saliency callable to return maps of shape {expected}, got {got}."
                )
            return maps
        return saliency.spectral_residual(images)

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        if images is None:
            raise ValueError("SaliencyMix: expected the image batch to compute saliency from.")
        drawn = self._draw_lam(batch_size, generator)
        if drawn is None:
            return None
        applied, lam = drawn
        index = self._partners(batch_size, generator)
        sources = index[: lam.shape[0]]
        peaks = saliency.peak(self._maps(images.index_select(0, sources.to(images.device)))).cpu()
        boxes = sampling.boxes_at(peaks, lam, height, width)
        boxes[~applied] = 0
        lam_out, box_arg = _batch_or_sample(
            self.mode, 1.0 - sampling.box_area_fraction(boxes, height, width), boxes
        )
        return self._paired(MixParams(index=index, lam=lam_out, boxes=box_arg))

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        return F.cutmix(images, params.index, params.boxes, out=images if inplace else None)


class Mosaic(_PairMixer):
    """Mosaic: four images tile the output around a centre drawn in ``centre_range`` of each side.

    The top-left tile is the sample's own; the other three come from its partner, its partner's
    partner and the next one along (for ``"roll"``: samples i−1, i−2, i−3; for ``"random"``:
    the next three along a random cycle). Batches of fewer than four images repeat sources. Each
    tile shows its source's pixels at the same positions (no rescaling), so label weights are
    the tiles' areas.

    Args:
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        centre_range: range of the centre, as a fraction of each side.
        p: probability that the batch (``mode="batch"``) or each sample (``"sample"``) is mixed.
        mode: ``"batch"`` draws one centre per call, ``"sample"`` one per sample.
        partner: ``"roll"`` or ``"random"`` (``"flip"`` is refused: under it the partner's
            partner is the sample itself).
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule) or a callable returning the labels.

    Example:
        >>> images, labels = Mosaic(num_classes=10)(torch.rand(4, 3, 32, 32), torch.arange(4))
        >>> int((labels > 0).sum(1).max())
        4
    """

    _pairs = False  # three partners per sample: there are no pairs to share draws

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        centre_range: tuple[float, float] = (0.25, 0.75),
        p: float = 1.0,
        mode: Mode = "batch",
        partner: Partner = "roll",
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        inplace: bool = False,
        generator: torch.Generator | None = None,
        labels_getter: str | LabelsGetter | None = "default",
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            alpha=1.0,
            p=p,
            mode=mode,
            partner=partner,
            label_smoothing=label_smoothing,
            multi_label=multi_label,
            inplace=inplace,
            generator=generator,
            labels_getter=labels_getter,
        )
        self.centre_range = _check_range("Mosaic", "centre_range", centre_range, 0.0, 1.0)
        if self.partner == "flip":
            # The partner's partner under "flip" is the sample itself: two images, not four.
            raise ValueError(
                "Mosaic: expected partner 'roll' or 'random' (the other tiles come from the "
                "partner, its partner and the next one; with 'flip' those are samples B−1−i, i "
                "and B−1−i again), got 'flip'."
            )

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        applied = self._draw_applied_for_mode(batch_size, generator)
        if applied is None:
            return None
        index = self._partners(batch_size, generator)
        second = index[index]
        partners = torch.stack([index, second, index[second]])
        centres = sampling.mosaic_centres(
            applied.shape[0], height, width, generator, self.centre_range
        )
        centres[~applied] = torch.tensor([width, height])
        cx, cy = centres[:, 0].double(), centres[:, 1].double()
        weights = torch.stack(
            [cx * cy, (width - cx) * cy, cx * (height - cy), (width - cx) * (height - cy)]
        )
        weights = (weights / (height * width)).expand(4, batch_size)
        centre_arg: tuple[int, int] | Tensor = centres
        if self.mode == "batch":
            centre_arg = (int(centres[0, 0]), int(centres[0, 1]))
        return MosaicParams(
            index=index,
            lam=weights[0] if self.mode == "sample" else float(weights[0, 0]),
            partners=partners,
            centres=centre_arg,
            weights=weights,
        )

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        tiles = cast(MosaicParams, params)
        return F.mosaic(images, tiles.partners, tiles.centres, out=images if inplace else None)

    def _mix_boxes(
        self, targets: list[boxes.BoxTarget], params: MixParams, height: int, width: int
    ) -> list[boxes.BoxTarget]:
        tiles = cast(MosaicParams, params)
        out = []
        for i, target in enumerate(targets):
            if isinstance(tiles.centres, Tensor):
                cx, cy = (float(v) for v in tiles.centres[i].tolist())
            else:
                cx, cy = float(tiles.centres[0]), float(tiles.centres[1])
            regions = [
                (0.0, 0.0, cx, cy),
                (cx, 0.0, float(width), cy),
                (0.0, cy, cx, float(height)),
                (cx, cy, float(width), float(height)),
            ]
            sources = [target] + [targets[int(tiles.partners[q, i])] for q in range(3)]
            out.append(boxes.tile(sources, regions, self.min_box_visibility))
        return out

    def _mix_rows(self, rows: Tensor, params: MixParams) -> Tensor:
        tiles = cast(MosaicParams, params)
        own = torch.arange(rows.shape[0]).unsqueeze(0)
        return F.mix_labels_multi(rows, torch.cat([own, tiles.partners]), tiles.weights)


@dataclass(frozen=True, kw_only=True)
class JigsawParams(MixParams):
    """Parameters of Jigsaw: ``order`` ``(B, rows·cols)``, the source tile of every tile."""

    order: Tensor


class Jigsaw(_KeepsLabels):
    """Jigsaw (kornia's ``RandomJigsaw``): every image is cut into a ``grid`` of equal tiles,
    which are shuffled within the image.

    Each mixed sample gets its own random order of the tiles, never the one it had; nothing
    moves between images, so labels are unchanged (as ``(B, K)`` rows when ``num_classes`` is
    given, the format of the mixers beside it in a :class:`~batchmix.RandomMix`). Segmentation
    masks move with their tiles. Tiles are numbered row by row in the input and the output
    alike, so an order ``0, 1, …`` is the image itself. The image height must be divisible by
    the grid's rows and the width by its columns.

    Args:
        grid: ``(rows, cols)`` of tiles, at least two tiles in all.
        num_classes: number of classes; when set, index labels become ``(B, K)`` rows.
        p: probability that each sample is shuffled.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)`` for the output rows.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets; smoothing then moves
            each towards 0.5.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule), a callable, or ``None`` (no labels).

    Example:
        >>> images = Jigsaw(grid=(2, 2))(torch.rand(4, 3, 32, 32))
        >>> images.shape
        torch.Size([4, 3, 32, 32])
    """

    _mixes_boxes = False

    def __init__(
        self,
        *,
        grid: tuple[int, int] = (4, 4),
        num_classes: int | None = None,
        p: float = 1.0,
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        inplace: bool = False,
        generator: torch.Generator | None = None,
        labels_getter: str | LabelsGetter | None = "default",
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            p=p,
            label_smoothing=label_smoothing,
            multi_label=multi_label,
            inplace=inplace,
            generator=generator,
            labels_getter=labels_getter,
        )
        if isinstance(grid, tuple | list):
            grid = tuple(_scalar(g) for g in grid)
        ints = (
            isinstance(grid, tuple | list)
            and len(grid) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in grid)
        )
        if not ints or min(grid) < 1 or grid[0] * grid[1] < 2:
            raise ValueError(
                f"Jigsaw: expected grid to be (rows, cols) of positive ints with at least two "
                f"tiles, got {grid!r}."
            )
        self.grid: tuple[int, int] = (int(grid[0]), int(grid[1]))

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        rows, cols = self.grid
        if height % rows or width % cols:
            raise ValueError(
                f"Jigsaw: expected the image height divisible by {rows} and the width by {cols} "
                f"(grid={self.grid}), got {height}×{width}."
            )
        applied = self._draw_applied(batch_size, generator)
        if not bool(applied.any()):
            return None
        tiles = rows * cols
        identity = torch.arange(tiles)
        # Uniform over the orders other than the identity: draw, and draw again where it came.
        order = torch.rand(batch_size, tiles, generator=generator, dtype=torch.float64).argsort(1)
        while True:
            again = applied & (order == identity).all(1)
            count = int(again.sum())
            if count == 0:
                break
            order[again] = torch.rand(
                count, tiles, generator=generator, dtype=torch.float64
            ).argsort(1)
        order[~applied] = identity
        return JigsawParams(index=torch.arange(batch_size), lam=1.0, order=order)

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        order = cast(JigsawParams, params).order
        return F.jigsaw(images, order, self.grid, out=images if inplace else None)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, num_classes={self.num_classes}, p={self.p}" + (
            ", multi_label=True" if self.multi_label else ""
        )


def _int_list(values: object) -> list[int] | None:
    """``values`` as a list of Python ints (from a sequence, set or integer tensor), or
    ``None`` when it is not one."""
    if isinstance(values, Tensor):
        if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
            return None
        return [int(v) for v in values.flatten().tolist()]
    if isinstance(values, str) or not isinstance(values, Sequence | set | frozenset):
        return None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        return None
    return [int(v) for v in values]


class Transplantation(_BatchTransform):
    """Transplantation (Sellner et al., "Semantic segmentation of surgical hyperspectral images
    under geometric domain shifts", MICCAI 2023; kornia's ``RandomTransplantation``): one class
    of the partner's segmentation mask is copied, pixels and mask, into the sample.

    For every mixed sample, one class is drawn uniformly among those present in its partner's
    mask (``excluded_labels`` left out), and wherever the partner's mask holds that class the
    sample takes the partner's pixels and mask values. The first segmentation mask batch
    (``tv_tensors.Mask``) of the sample chooses the regions; every mask batch follows them. A
    partner without an eligible class leaves the sample unchanged. Classification labels, when
    present, are mixed by pixel share like every other mixer's.

    Args:
        excluded_labels: mask values never transplanted (e.g. the background, ``(0,)``).
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        p: probability that each sample receives a transplant.
        partner: ``"roll"`` (the donor is sample i−1, as kornia's), ``"flip"`` or ``"random"``.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule), a callable, or ``None`` (no labels).

    Example:
        >>> from torchvision import tv_tensors
        >>> masks = tv_tensors.Mask(torch.randint(0, 3, (4, 16, 16)))
        >>> out = Transplantation(excluded_labels=(0,))({"image": torch.rand(4, 3, 16, 16), "mask": masks})
        >>> out["mask"].shape
        torch.Size([4, 16, 16])
    """

    _labels_required = False
    _mixes_boxes = False
    _reads_masks = True

    def __init__(
        self,
        *,
        excluded_labels: Sequence[int] = (),
        num_classes: int | None = None,
        p: float = 1.0,
        partner: Partner = "roll",
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        inplace: bool = False,
        generator: torch.Generator | None = None,
        labels_getter: str | LabelsGetter | None = "default",
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            p=p,
            label_smoothing=label_smoothing,
            multi_label=multi_label,
            inplace=inplace,
            generator=generator,
            labels_getter=labels_getter,
        )
        values = _int_list(excluded_labels)
        if values is None:
            raise ValueError(
                "Transplantation: expected excluded_labels to be ints (a sequence, set or "
                f"integer tensor), got {excluded_labels!r}."
            )
        self.excluded_labels: tuple[int, ...] = tuple(sorted(set(values)))
        if partner not in sampling.PARTNERS:
            raise ValueError(
                "Transplantation: expected partner to be one of "
                f"{', '.join(map(repr, sampling.PARTNERS))}, got {partner!r}."
            )
        self.partner: Partner = partner

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
        masks: Tensor | None = None,
    ) -> MixParams | None:
        if masks is None:
            raise ValueError(
                "Transplantation: expected segmentation masks (tv_tensors.Mask) in the sample to "
                "draw the transplanted classes from, got none."
            )
        if masks.is_floating_point() or masks.is_complex():
            raise ValueError(
                f"Transplantation: expected integer or bool class masks, got {masks.dtype}."
            )
        applied = self._draw_applied(batch_size, generator)
        if not bool(applied.any()):
            return None
        index = sampling.partner_index(batch_size, self.partner, generator)
        choice = torch.rand(batch_size, generator=generator, dtype=torch.float64)
        classes = masks.reshape(batch_size, height, width)
        if classes.dtype == torch.bool:
            classes = classes.view(torch.uint8)  # False, True = classes 0, 1
        donors = torch.unique(index[applied]).tolist()
        present = self._classes_present(classes, donors)  # {donor: {eligible class: pixels}}
        labels = torch.zeros(batch_size, dtype=torch.long)
        moved = torch.zeros(batch_size, dtype=torch.float64)  # pixels each sample receives
        for i in applied.nonzero().flatten().tolist():
            candidates = present[int(index[i])]
            if candidates:
                label = list(candidates)[int(float(choice[i]) * len(candidates))]
                labels[i], moved[i] = label, candidates[label]
        chosen = (moved > 0).nonzero().flatten()
        if not chosen.numel():
            return None  # no partner holds an eligible class: nothing changes
        device = classes.device
        wanted = labels.to(device=device, dtype=classes.dtype).view(-1, 1, 1)
        if chosen.numel() == batch_size:
            region = classes.index_select(0, index.to(device)) == wanted
        else:
            region = torch.zeros((batch_size, height, width), dtype=torch.bool, device=device)
            rows = chosen.to(device)
            partners = classes.index_select(0, index[chosen].to(device))
            region[rows] = partners == wanted.index_select(0, rows)
        kept = 1.0 - moved / float(height * width)
        return MaskParams(index=index, lam=kept, mask=region)

    def _classes_present(self, classes: Tensor, donors: list[int]) -> dict[int, dict[int, int]]:
        """Every donor's classes that may be transplanted, in increasing order, with their
        pixel counts."""
        excluded = set(self.excluded_labels)
        bounds = torch.aminmax(classes)
        low, high = int(bounds.min), int(bounds.max)
        shift = min(low, 0)  # non-negative ids are counted in their own dtype

        def count(donor: int) -> Tensor:
            values = classes[donor].reshape(-1)
            values = values if shift == 0 else values.long() - shift
            return torch.bincount(values, minlength=high - shift + 1)

        rows: list[tuple[Tensor, Tensor]] = []  # (classes found, their pixel counts) per donor
        if high - shift < 1 << 12:  # class ids: every donor's counts read back in one go
            for row in torch.stack([count(d) for d in donors]).cpu():
                found = row.nonzero().flatten()
                rows.append((found + shift, row[found]))
        elif high - shift < 1 << 16:  # a wider span: counts per donor
            for donor in donors:
                row = count(donor)
                found = row.nonzero().flatten()
                rows.append((found + shift, row[found]))
        else:  # sparse ids (e.g. instance ids): sorted per donor
            rows = [torch.unique(classes[d], return_counts=True) for d in donors]
        present: dict[int, dict[int, int]] = {}
        for donor, (found, counted) in zip(donors, rows, strict=True):
            pairs = zip(found.tolist(), counted.tolist(), strict=True)
            present[donor] = {c: n for c, n in pairs if c not in excluded}
        return present

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        mask = cast(MaskParams, params).mask
        return F.mask_mix(images, params.index, mask, out=images if inplace else None)

    def extra_repr(self) -> str:
        return (
            f"excluded_labels={self.excluded_labels}, num_classes={self.num_classes}, p={self.p}, "
            f"partner={self.partner!r}" + (", multi_label=True" if self.multi_label else "")
        )

"""The transforms users instantiate: :class:`CutMix`, :class:`MixUp`, :class:`CutOut`, :class:`RandomMix`.

Each call first draws its parameters (partner index, λ, boxes) into a frozen :class:`MixParams`
with :mod:`batchmix.sampling`, then applies the deterministic kernels of
:mod:`batchmix.functional` with those same parameters to every image batch in the sample and to
the labels. They accept what ``torchvision.transforms.v2.CutMix``/``MixUp`` accept and return the
same structure, so replacing ``v2.CutMix(num_classes=K)`` with ``batchmix.CutMix(num_classes=K)``
changes nothing else in a program.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from batchmix import _fast, boxes, sampling
from batchmix import functional as F
from batchmix.sampling import MODES, PARTNERS, Mode, Partner
from batchmix.structures import (
    LabelsGetter,
    check_images,
    check_masks,
    parse_labels_getter,
    parse_sample,
)

__all__ = ["CutMix", "CutOut", "MixParams", "MixUp", "RandomMix"]


@dataclass(frozen=True)
class MixParams:
    """Everything random about one call, drawn before any tensor is touched.

    Attributes:
        index: ``(B,)`` partner of each sample (unused by CutOut).
        lam: label weight of the original sample: a float for the batch or a ``(B,)`` float64
            tensor per sample. For CutMix it is the exact share of pixels kept (unless
            ``correct_lam=False``); unmixed samples have λ = 1.
        boxes: one box for the batch as ``(x1, y1, x2, y2)``, or ``(B, 4)`` boxes, for CutMix and
            CutOut; unmixed samples have an empty box. MixUp leaves it empty.
    """

    index: Tensor
    lam: float | Tensor
    boxes: F.Box | Tensor = (0, 0, 0, 0)

    def box(self, i: int) -> tuple[float, float, float, float]:
        """Sample ``i``'s box as floats ``(x1, y1, x2, y2)``."""
        row = self.boxes[i].tolist() if isinstance(self.boxes, Tensor) else self.boxes
        return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    def weight(self, i: int) -> float:
        """Sample ``i``'s λ."""
        return float(self.lam[i]) if isinstance(self.lam, Tensor) else float(self.lam)


_P = TypeVar("_P", bound=MixParams)


def _check_choice(owner: str, name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(
            f"{owner}: expected {name} to be one of {', '.join(map(repr, choices))}, got {value!r}."
        )
    return str(value)


def _check_number(
    owner: str,
    name: str,
    value: object,
    *,
    low: float,
    high: float,
    low_open: bool,
    high_open: bool,
) -> float:
    value = _scalar(value)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = (number > low if low_open else number >= low) and (
            number < high if high_open else number <= high
        )
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{owner}: expected {name} in {interval}, got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def _scalar(value: object) -> Any:
    """A one-element, zero-dimensional real tensor as its Python number; anything else as is."""
    if (
        isinstance(value, Tensor)
        and value.ndim == 0
        and not value.is_complex()
        and value.dtype != torch.bool
    ):
        return value.item()
    return value


def _finite_weight(weight: numbers.Real) -> bool:
    """Whether a real weight is non-negative and finite as a float."""
    try:
        return 0.0 <= float(weight) < math.inf
    except OverflowError:
        return False


def _float_sum(weights: Sequence[Any]) -> float:
    """The sum of real weights as a float; ``inf`` when it overflows (huge ints included)."""
    try:
        return sum(float(w) for w in weights)
    except OverflowError:
        return math.inf


def _check_writable(owner: str, tensors: list[Tensor]) -> None:
    """Refuses, before any of them is written, batches that cannot be mixed in place."""
    if torch.compiler.is_compiling():
        return
    for tensor in tensors:
        base = tensor._base if tensor._is_view() else tensor
        if tensor.requires_grad and torch.is_grad_enabled() and base is not None and base.is_leaf:
            raise ValueError(
                f"{owner}: expected batches that can be written in place (inplace=True), got a "
                "leaf tensor that requires grad (or a view of one); use inplace=False."
            )
        if torch._debug_has_internal_overlap(tensor) == 1:
            raise ValueError(
                f"{owner}: expected batches that can be written in place (inplace=True), got "
                f"one whose elements share memory (strides {tensor.stride()}, e.g. from "
                "expand()); use inplace=False or pass a contiguous copy."
            )


def _check_num_classes(owner: str, num_classes: object) -> int | None:
    num_classes = _scalar(num_classes)
    if num_classes is None:
        return None
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(
            f"{owner}: expected num_classes to be a positive int or None, got {num_classes!r}."
        )
    return int(num_classes)


def _check_generator(owner: str, generator: object) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{owner}: expected generator to be a torch.Generator or None, got {type(generator).__name__}."
        )
    if generator.device.type != "cpu":
        raise ValueError(
            f"{owner}: expected a CPU generator (parameters are drawn on the CPU), got one on {generator.device}."
        )
    return generator


def _stack(samples: list[Tensor], batch: Tensor) -> None:
    """``torch.stack(samples, out=batch)``, with the compiled loop where it applies."""
    if not _fast.stack_gather(samples, batch):
        torch.stack(samples, 0, out=batch)


class _BatchTransform(nn.Module):
    """Shared machinery: argument checks, sample parsing, label rows, parameters, kernels."""

    _labels_required = True
    #: Whether the pixels are blended (floating or uint8 images only) rather than moved.
    _blends = False
    #: Whether segmentation masks are written (CutOut leaves them as they are).
    _writes_masks = True
    _mixes_boxes = True
    #: Whether :meth:`make_params` takes ``masks=`` (the first segmentation mask batch, or
    #: ``None``): transforms whose regions come from the masks (Transplantation).
    _reads_masks = False
    #: Whether detection boxes move with the pixels (CutOut passes them through as they are).
    _moves_boxes = True

    def __init__(
        self,
        *,
        num_classes: int | None,
        p: float,
        label_smoothing: float,
        multi_label: bool,
        inplace: bool,
        generator: torch.Generator | None,
        labels_getter: str | LabelsGetter | None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_classes = _check_num_classes(name, num_classes)
        self.p = _check_number(name, "p", p, low=0.0, high=1.0, low_open=False, high_open=False)
        self.label_smoothing = _check_number(
            name,
            "label_smoothing",
            label_smoothing,
            low=0.0,
            high=1.0,
            low_open=False,
            high_open=False,
        )
        self.multi_label = bool(multi_label)
        self.inplace = bool(inplace)
        self.generator = _check_generator(name, generator)
        self.labels_getter = labels_getter
        self._labels_getter = parse_labels_getter(name, labels_getter)
        #: Set to ``False`` to stop mixing (e.g. for the last epochs); labels keep their format.
        self.enabled = True
        #: Detection boxes whose visible share falls below this are dropped.
        self.min_box_visibility = 0.25

    def forward(self, *inputs: Any) -> Any:
        """Mixes the batch: ``t(images, labels)``, ``t((images, labels))`` or ``t(sample)``."""
        return self.mix_batch(*inputs)

    def mix_batch(self, *inputs: Any, inplace: bool | None = None) -> Any:
        """Like calling the transform, with ``inplace`` overriding the constructor's choice.

        :class:`batchmix.MixCollate` uses ``inplace=True`` on the batch it has just collated.
        """
        return self._mix(inputs, inplace, None)

    def _mix_samples(self, batch: Tensor, labels: Any, samples: list[Tensor]) -> Any:
        """``mix_batch([torch.stack(samples), labels], inplace=True)`` written straight into
        ``batch``, a fresh uninitialised tensor of the stacked shape: :class:`MixCollate`'s path.

        Only the classes that declare ``_gathers`` (CutMix, MixUp; not their subclasses, whose
        parameters may read the pixels), with the default ``labels_getter`` (which finds the
        labels after the images), skip the stack; every other case stacks, then calls
        :meth:`mix_batch` (overrides included).
        """
        gathers = type(self).__dict__.get("_gathers", False)
        if gathers and self.labels_getter == "default":
            return self._mix(([batch, labels],), True, samples)
        _stack(samples, batch)
        return self.mix_batch([batch, labels], inplace=True)

    #: Set by the classes whose :meth:`_gather_images` builds the mixed batch from the samples
    #: in one pass (read from the class itself, so subclasses do not inherit it).
    _gathers = False

    def _gather_images(self, samples: list[Tensor], batch: Tensor, params: MixParams) -> Tensor:
        """The mixed images written into ``batch`` from the unstacked ``samples``."""
        _stack(samples, batch)
        return self._mix_images(batch, params, True)

    def _mix(
        self, inputs: tuple[Any, ...], inplace: bool | None, samples: list[Tensor] | None
    ) -> Any:
        """:meth:`mix_batch`; with ``samples``, the first image batch is still to be built from
        them (see :meth:`_mix_samples`)."""
        name = type(self).__name__
        parsed = parse_sample(
            name, inputs, self._labels_getter, labels_required=self._labels_required
        )
        labels = parsed.labels
        # Index labels mixed by a pair mixer go straight to mixed rows (no one-hot rows first).
        direct = labels is not None and labels.ndim == 1 and self._mixes_index_labels_directly()
        rows = None if labels is None else self._label_rows(labels, one_hot=not direct)
        batch_size = None if labels is None else int(labels.shape[0])
        height, width = check_images(name, parsed.images, batch_size, blends=self._blends)
        batch = int(parsed.images[0].shape[0])
        check_masks(name, parsed.masks, batch, (height, width))
        use_inplace = self.inplace if inplace is None else inplace
        targets = []
        if parsed.has_boxes:
            if not self._mixes_boxes:
                raise ValueError(
                    f"{name}: expected no bounding boxes; boxes are mixed by CutMix, MixUp, "
                    "SaliencyMix, ResizeMix, Mosaic and passed through by CutOut."
                )
            targets = boxes.find_targets(
                name, parsed.sample, batch, (height, width), settle=self._moves_boxes
            )
            visibility = self.min_box_visibility
            if not (isinstance(visibility, numbers.Real) and 0.0 <= visibility <= 1.0):
                raise ValueError(
                    f"{name}: expected min_box_visibility to be a number in [0, 1], got "
                    f"{visibility!r}."
                )
        if self._may_write(inplace):
            # Before the parameters are drawn, so that a refusal does not depend on the draw
            # (with 0 < p < 1 it would come at random) nor use up random numbers.
            written = parsed.images + (parsed.masks if self._writes_masks else [])
            _check_writable(name, written)
        params = None
        if self.enabled:
            generator = sampling.resolve_generator(self.generator)
            extra = (
                {"masks": parsed.masks[0] if parsed.masks else None} if self._reads_masks else {}
            )
            params = self.make_params(
                batch, height, width, generator, images=parsed.images[0], **extra
            )
        if params is None:
            if samples is not None:
                _stack(samples, parsed.images[0])
            if direct and rows is not None and self.num_classes is not None:
                rows = F.one_hot(rows, self.num_classes)
            out = parsed.rebuild(parsed.images, parsed.masks, rows)
            return boxes.replace_targets(out, targets) if targets else out
        images = [
            self._mix_images(image, params, use_inplace)
            if k or samples is None
            else self._gather_images(samples, image, params)
            for k, image in enumerate(parsed.images)
        ]
        masks = [self._mix_masks(mask, params, use_inplace) for mask in parsed.masks]
        if direct and rows is not None and self.num_classes is not None:
            rows = F.mix_index_labels(rows, self.num_classes, params.index, params.lam)
        elif rows is not None:
            rows = self._mix_rows(rows, params)
        out = parsed.rebuild(images, masks, rows)
        if targets:
            out = boxes.replace_targets(out, self._mix_boxes(targets, params, height, width))
        return out

    def _may_write(self, inplace: bool | None) -> bool:
        """Whether a call with this ``inplace`` (``None``: the constructor's) may write into the
        batch, whatever its draws: in place, enabled, and applied with some probability."""
        use_inplace = self.inplace if inplace is None else inplace
        drawn = self.p > 0.0 or type(self)._draw_applied is not _BatchTransform._draw_applied
        return use_inplace and self.enabled and drawn

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        """Draws this call's parameters; ``None`` when nothing is mixed.

        ``images`` (the first image batch) is only read by content-aware mixers (SaliencyMix).
        """
        raise NotImplementedError

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        raise NotImplementedError

    def _mix_masks(self, masks: Tensor, params: MixParams, inplace: bool) -> Tensor:
        """Segmentation masks follow the images' regions (pixels are copied, never blended)."""
        return self._mix_images(masks, params, inplace)

    def _mix_boxes(
        self, targets: list[boxes.BoxTarget], params: MixParams, height: int, width: int
    ) -> list[boxes.BoxTarget]:
        """Detection targets after mixing (see :mod:`batchmix.boxes`); pasting mixers here.
        A sample paired with itself gets its own pixels back, and keeps its boxes."""
        index = params.index.tolist()
        return [
            target
            if i == j
            else boxes.paste(target, targets[j], params.box(i), self.min_box_visibility)
            for i, (target, j) in enumerate(zip(targets, index, strict=True))
        ]

    def _mix_rows(self, rows: Tensor, params: MixParams) -> Tensor:
        return F.mix_labels(rows, params.index, params.lam)

    def _mixes_index_labels_directly(self) -> bool:
        """Whether index labels may skip the one-hot rows: :meth:`_mix_rows` is the pair mix
        and there is no smoothing (smoothed rows keep timm's arithmetic, bit for bit)."""
        return (
            type(self)._mix_rows is _BatchTransform._mix_rows
            and self.label_smoothing == 0.0
            and self.num_classes is not None
        )

    def _label_rows(self, labels: Tensor, *, one_hot: bool = True) -> Tensor:
        """Validates labels and returns them as ``(B, K)`` floating rows, smoothed if asked.

        With ``one_hot=False``, valid index labels come back as they are.
        """
        name = type(self).__name__
        if labels.ndim == 1 and self.multi_label:
            raise ValueError(
                f"{name}: expected (B, K) rows of 0/1 targets with multi_label=True, got index "
                f"labels of shape {tuple(labels.shape)}."
            )
        if labels.ndim == 1:
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise ValueError(
                    f"{name}: expected 1-D labels to hold integer class indices, got {labels.dtype}; "
                    "pass one-hot or soft labels as a (B, K) tensor."
                )
            if self.num_classes is None:
                raise ValueError(
                    f"{name}: expected num_classes to be set for index labels of shape "
                    f"{tuple(labels.shape)}; pass num_classes=K or (B, K) labels."
                )
            if labels.numel() > 0 and not _fast.indices_inside(labels, self.num_classes):
                bounds = torch.aminmax(labels)
                low, high = int(bounds.min), int(bounds.max)
                if low < 0 or high >= self.num_classes:
                    raise ValueError(
                        f"{name}: expected class indices in [0, {self.num_classes}), "
                        f"got values from {low} to {high}."
                    )
            if not one_hot:
                return labels
            return F.one_hot(labels, self.num_classes, smoothing=self.label_smoothing)
        if labels.ndim == 2:
            if self.num_classes is not None and labels.shape[1] != self.num_classes:
                raise ValueError(
                    f"{name}: expected 2-D labels of shape (B, {self.num_classes}), "
                    f"got {tuple(labels.shape)}."
                )
            if labels.is_complex():
                raise TypeError(f"{name}: expected real-valued labels, got {labels.dtype}.")
            rows = labels if labels.is_floating_point() else labels.to(torch.float32)
            return F.smooth_labels(rows, self.label_smoothing, multi_label=self.multi_label)
        hint = (
            "; segmentation masks must be wrapped as tv_tensors.Mask to be read as masks"
            if labels.ndim in (3, 4)
            else ""
        )
        raise ValueError(
            f"{name}: expected labels of shape (B,) with class indices or (B, K) with "
            f"probabilities, got {tuple(labels.shape)}{hint}."
        )

    def _draw_applied(self, count: int, generator: torch.Generator | None) -> Tensor:
        return sampling.bernoulli(self.p, count, generator)

    def _draw_applied_once(self, generator: torch.Generator | None) -> bool:
        """``bool(self._draw_applied(1, generator)[0])``, as a Python number unless a subclass
        draws its own way."""
        if type(self)._draw_applied is _BatchTransform._draw_applied:
            return sampling.bernoulli_one(self.p, generator)
        return bool(self._draw_applied(1, generator)[0])

    def _always_applied(self) -> bool:
        """Whether every sample is mixed without drawing (p >= 1 and no subclass draw)."""
        return self.p >= 1.0 and type(self)._draw_applied is _BatchTransform._draw_applied


class _PairMixer(_BatchTransform):
    """Base for transforms that mix each sample with a partner (MixUp, CutMix)."""

    def __init__(
        self,
        *,
        num_classes: int | None,
        alpha: float,
        p: float,
        mode: Mode,
        partner: Partner,
        label_smoothing: float,
        multi_label: bool,
        inplace: bool,
        generator: torch.Generator | None,
        labels_getter: str | LabelsGetter | None,
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
        name = type(self).__name__
        self.alpha = _check_number(
            name, "alpha", alpha, low=0.0, high=math.inf, low_open=True, high_open=True
        )
        if mode == "pair" and not self._pairs:
            raise ValueError(
                f"{name}: expected mode 'batch' or 'sample', got 'pair': {name} takes three "
                "partners per sample, so there are no pairs to share a draw."
            )
        modes = MODES if self._pairs else tuple(m for m in MODES if m != "pair")
        self.mode: Mode = _check_choice(name, "mode", mode, modes)  # type: ignore[assignment]
        self.partner: Partner = _check_choice(name, "partner", partner, PARTNERS)  # type: ignore[assignment]
        if self.mode == "pair" and self.partner == "roll":
            raise ValueError(
                f"{name}: expected partner 'flip' (timm's pairs i and B−1−i) or 'random' with "
                "mode='pair', where each pair shares λ and swaps both ways; got partner='roll' "
                "(roll, the default, pairs i with i−1 but i−1 with i−2)."
            )

    #: Whether ``mode="pair"`` is offered (not by Mosaic, which takes three partners).
    _pairs = True

    def _partners(self, batch_size: int, generator: torch.Generator | None) -> Tensor:
        """Each sample's partner; in pair mode an index that is its own inverse."""
        return sampling.partner_index(
            batch_size, self.partner, generator, pairs=self.mode == "pair"
        )

    def _paired(self, params: _P) -> _P | None:
        """Pair mode: every pair takes the per-sample draws of its first sample (λ, box, mask),
        so that sample i and its partner j swap the same region, or blend with the same λ. A
        sample paired with itself (the middle of an odd batch) is left unmixed, and ``None``
        comes back when no pair is mixed.

        Other modes return ``params`` as they are.
        """
        if self.mode != "pair":
            return params
        index = params.index
        own = torch.arange(index.shape[0])
        first = torch.minimum(own, index)
        alone = index == own
        changes: dict[str, Any] = {}
        for name, unmixed in (("lam", 1.0), ("boxes", 0), ("mask", False)):
            value = getattr(params, name, None)
            if isinstance(value, Tensor):
                value = value.index_select(0, first)
                value[alone] = unmixed
                changes[name] = value
        lam = changes.get("lam")
        if isinstance(lam, Tensor) and bool((lam == 1.0).all()):
            return None  # every λ is 1: nothing changes (boxes and masks are empty)
        return dataclasses.replace(params, **changes)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, alpha={self.alpha}, p={self.p}, mode={self.mode!r}, "
            f"partner={self.partner!r}, label_smoothing={self.label_smoothing}, inplace={self.inplace}"
            + (", multi_label=True" if self.multi_label else "")
        )

    def _draw_applied_for_mode(
        self, batch_size: int, generator: torch.Generator | None
    ) -> Tensor | None:
        """Apply decisions, one (batch mode) or one per sample; ``None`` when none is drawn."""
        applied = self._draw_applied(1 if self.mode == "batch" else batch_size, generator)
        return applied if bool(applied.any()) else None

    def _draw_lam(
        self, batch_size: int, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor] | None:
        """Apply decisions and λ: ``(applied, lam)`` of length 1 (batch mode) or B, or ``None``."""
        if self._always_applied():  # nothing to draw or mask (sampling.bernoulli draws nothing)
            count = 1 if self.mode == "batch" else batch_size
            return torch.ones(count, dtype=torch.bool), sampling.beta(self.alpha, count, generator)
        applied = self._draw_applied_for_mode(batch_size, generator)
        if applied is None:
            return None
        lam = sampling.beta(self.alpha, applied.shape[0], generator)
        return applied, torch.where(applied, lam, torch.ones_like(lam))


class MixUp(_PairMixer):
    """MixUp (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018).

    Each sample becomes ``λ·x_i + (1−λ)·x_partner`` and its label ``λ·y_i + (1−λ)·y_partner``,
    with λ ~ Beta(α, α) the weight of the original sample.

    Args:
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        alpha: Beta distribution parameter, > 0.
        p: probability that the batch (``mode="batch"``), each sample (``"sample"``) or
            each pair (``"pair"``) is mixed.
        mode: ``"batch"`` draws one λ per call, ``"sample"`` one per sample,
            ``"pair"`` one per pair of partners (timm's pair mode; needs a symmetric ``partner``).
        partner: ``"roll"`` (sample i−1, torchvision), ``"flip"`` (B−1−i, timm) or ``"random"``.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule) or a callable returning the labels.

    Example:
        >>> mixup = MixUp(num_classes=10)
        >>> images, labels = mixup(torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,)))
        >>> labels.shape
        torch.Size([8, 10])
    """

    _blends = True

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        alpha: float = 1.0,
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

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        lam: float | Tensor
        if self.mode == "batch":  # Python numbers: the same draws and values as the tensors
            if not self._draw_applied_once(generator):
                return None
            lam = sampling.beta_one(self.alpha, generator)
        else:
            drawn = self._draw_lam(batch_size, generator)
            if drawn is None:
                return None
            lam = drawn[1]
        index = self._partners(batch_size, generator)
        return self._paired(MixParams(index=index, lam=lam))

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        return F.mixup(images, params.index, params.lam, out=images if inplace else None)

    _gathers = True

    def _gather_images(self, samples: list[Tensor], batch: Tensor, params: MixParams) -> Tensor:
        if _fast.mixup_gather(samples, batch, params.index, params.lam):
            return batch
        return super()._gather_images(samples, batch, params)

    def _mix_boxes(
        self, targets: list[boxes.BoxTarget], params: MixParams, height: int, width: int
    ) -> list[boxes.BoxTarget]:
        index = params.index.tolist()
        return [
            t if i == j else boxes.blend(t, targets[j], params.weight(i))  # i == j: unchanged
            for i, (t, j) in enumerate(zip(targets, index, strict=True))
        ]

    def _mix_masks(self, masks: Tensor, params: MixParams, inplace: bool) -> Tensor:
        """A blended image has no single true mask: each keeps the mask of its heavier part."""
        lam = torch.as_tensor(params.lam, dtype=torch.float64).expand(masks.shape[0])
        own = (lam >= 0.5).to(masks.device).view((-1,) + (1,) * (masks.ndim - 1))
        partner = masks.index_select(0, params.index.to(masks.device))
        return torch.where(own, masks, partner, out=masks if inplace else None)


class CutMix(_PairMixer):
    """CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with
    Localizable Features", ICCV 2019).

    A box of sides √(1−λ)·H by √(1−λ)·W, centred uniformly over the image and clipped to it, is
    replaced by the partner's pixels. The label weight is the exact share of pixels kept,
    ``1 − box area / (H·W)``, unless ``correct_lam=False``.

    Args:
        num_classes: number of classes; required for index labels of shape ``(B,)``.
        alpha: Beta distribution parameter, > 0.
        p: probability that the batch (``mode="batch"``), each sample (``"sample"``) or
            each pair (``"pair"``) is mixed.
        mode: ``"batch"`` draws one λ and box per call, ``"sample"`` one per sample,
            ``"pair"`` one per pair of partners (timm's pair mode; needs a symmetric ``partner``).
        partner: ``"roll"`` (sample i−1, torchvision), ``"flip"`` (B−1−i, timm) or ``"random"``.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)``, applied before mixing.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        correct_lam: weight labels by the clipped box's pixel share (the paper's rule).
        box_range: ``(lo, hi)`` fractions of the image side; when given, box sides are drawn
            uniformly in that range instead of from λ (timm's ``cutmix_minmax``), and the label
            weight is always the pixel share.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule) or a callable returning the labels.

    Example:
        >>> cutmix = CutMix(num_classes=10, mode="sample")
        >>> images, labels = cutmix(torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,)))
        >>> bool(torch.allclose(labels.sum(1), torch.ones(8)))
        True
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        alpha: float = 1.0,
        p: float = 1.0,
        mode: Mode = "batch",
        partner: Partner = "roll",
        label_smoothing: float = 0.0,
        multi_label: bool = False,
        correct_lam: bool = True,
        box_range: tuple[float, float] | None = None,
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
        self.correct_lam = bool(correct_lam)
        self.box_range = self._check_box_range(box_range)

    def _check_box_range(self, box_range: object) -> tuple[float, float] | None:
        if box_range is None:
            return None
        if isinstance(box_range, tuple | list) and len(box_range) == 2:
            lo, hi = _scalar(box_range[0]), _scalar(box_range[1])
            if (
                isinstance(lo, numbers.Real)
                and isinstance(hi, numbers.Real)
                and 0.0 < float(lo) <= float(hi) <= 1.0
            ):
                return float(lo), float(hi)
        raise ValueError(
            f"CutMix: expected box_range to be (lo, hi) with 0 < lo <= hi <= 1, got {box_range!r}."
        )

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        if self.mode == "batch" and self.box_range is None:
            return self._make_batch_params(batch_size, height, width, generator)
        if (
            self.box_range is not None
            and min(int(self.box_range[1] * height), int(self.box_range[1] * width)) < 1
        ):
            raise ValueError(
                f"CutMix: expected box_range to allow boxes of at least one pixel on {height}×"
                f"{width} images, got {self.box_range} (the longest sides, ⌊hi·H⌋ by ⌊hi·W⌋, "
                f"are {int(self.box_range[1] * height)} by {int(self.box_range[1] * width)})."
            )
        drawn = self._draw_lam(batch_size, generator)
        if drawn is None:
            return None
        applied, lam = drawn
        index = self._partners(batch_size, generator)
        boxes = sampling.cutmix_boxes(lam, height, width, generator, self.box_range)
        if not self._always_applied():
            boxes[~applied] = 0
        if self.correct_lam or self.box_range is not None:
            lam = 1.0 - sampling.box_area_fraction(boxes, height, width)
        if self.mode == "batch":
            x1, y1, x2, y2 = (int(v) for v in boxes[0])
            return MixParams(index=index, lam=float(lam[0]), boxes=(x1, y1, x2, y2))
        return self._paired(MixParams(index=index, lam=lam, boxes=boxes))

    def _make_batch_params(
        self, batch_size: int, height: int, width: int, generator: torch.Generator | None
    ) -> MixParams | None:
        """Batch mode in Python numbers: the same draws and values as the tensor path."""
        if not self._draw_applied_once(generator):
            return None
        lam = sampling.beta_one(self.alpha, generator)
        index = self._partners(batch_size, generator)
        box = sampling.cutmix_box(lam, height, width, generator)
        if self.correct_lam:
            x1, y1, x2, y2 = box
            lam = 1.0 - float((x2 - x1) * (y2 - y1)) / float(height * width)
        return MixParams(index=index, lam=lam, boxes=box)

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        return F.cutmix(images, params.index, params.boxes, out=images if inplace else None)

    _gathers = True

    def _gather_images(self, samples: list[Tensor], batch: Tensor, params: MixParams) -> Tensor:
        if _fast.cutmix_gather(samples, batch, params.index, params.boxes):
            return batch
        return super()._gather_images(samples, batch, params)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, correct_lam={self.correct_lam}, box_range={self.box_range}"


class _KeepsLabels(_BatchTransform):
    """Base for transforms that change pixels but not what the image shows (CutOut, Jigsaw):
    labels pass through, as ``(B, K)`` rows when ``num_classes``, smoothing or ``multi_label``
    asks for rows, else as given."""

    _labels_required = False

    def _label_rows(self, labels: Tensor, *, one_hot: bool = True) -> Tensor:
        plain = self.num_classes is None and self.label_smoothing == 0.0 and not self.multi_label
        if labels.ndim == 1 and plain:
            return labels
        return super()._label_rows(labels, one_hot=one_hot)

    def _mix_rows(self, rows: Tensor, params: MixParams) -> Tensor:
        return rows


class CutOut(_KeepsLabels):
    """CutOut (DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with
    Cutout", 2017): one square per sample, centred uniformly and clipped, is filled with ``value``.

    Labels are unchanged. When ``num_classes`` is given, index labels come back as ``(B, K)``
    float rows (smoothed if asked), the format of :class:`CutMix` and :class:`MixUp`, so CutOut
    can sit beside them in a :class:`RandomMix`. It can also be called on images alone.

    Args:
        size: side of the square in pixels (16 for CIFAR-10 in the paper); from the centre
            ``c``, it covers ``c − size // 2`` up to ``c − size // 2 + size`` (so an odd size
            keeps its side, where the paper's code, using ``c ± size // 2``, loses a pixel).
        value: fill value.
        num_classes: number of classes; when set, index labels become ``(B, K)`` rows.
        p: probability that each sample gets a square.
        label_smoothing: ε of ``CrossEntropyLoss(label_smoothing=ε)`` for the output rows.
        multi_label: labels are ``(B, K)`` rows of independent 0/1 targets (for
            ``BCEWithLogitsLoss``); smoothing then moves each towards 0.5, as timm's
            ``multi_label=True``.
        inplace: reuse the batch's memory instead of allocating the output.
        generator: CPU generator to draw from; torch's global RNG when ``None``.
        labels_getter: ``"default"`` (torchvision's rule), a callable, or ``None`` (no labels).

    Example:
        >>> images = CutOut(size=8)(torch.rand(4, 3, 32, 32))
        >>> images.shape
        torch.Size([4, 3, 32, 32])
    """

    _moves_boxes = False

    def __init__(
        self,
        *,
        size: int = 16,
        value: float = 0.0,
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
        size, value = _scalar(size), _scalar(value)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"CutOut: expected size to be a positive int (pixels), got {size!r}.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"CutOut: expected value to be a number, got {value!r}.")
        self.size: int = int(size)
        self.value: float = float(value)

    def make_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator | None,
        images: Tensor | None = None,
    ) -> MixParams | None:
        applied = None if self._always_applied() else self._draw_applied(batch_size, generator)
        if applied is not None and not bool(applied.any()):
            return None
        boxes = sampling.cutout_boxes(batch_size, self.size, height, width, generator)
        if applied is not None:
            boxes[~applied] = 0
        index = torch.from_numpy(np.arange(batch_size, dtype=np.int64))  # (costs less than torch's)
        return MixParams(index=index, lam=1.0, boxes=boxes)

    def _mix_images(self, images: Tensor, params: MixParams, inplace: bool) -> Tensor:
        return F.cutout(images, params.boxes, self.value, out=images if inplace else None)

    _writes_masks = False

    def _mix_masks(self, masks: Tensor, params: MixParams, inplace: bool) -> Tensor:
        return masks  # CutOut hides pixels; what the mask labels stays true

    def _mix_boxes(
        self, targets: list[boxes.BoxTarget], params: MixParams, height: int, width: int
    ) -> list[boxes.BoxTarget]:
        return targets

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, value={self.value}, num_classes={self.num_classes}, p={self.p}"
            + (", multi_label=True" if self.multi_label else "")
        )


class RandomMix(nn.Module):
    """Applies one of ``transforms`` per call, chosen with weights ``p`` (uniform by default).

    ``RandomMix([MixUp(...), CutMix(...)], p=[0.5, 0.5])`` is timm's MixUp-or-CutMix with
    ``switch_prob=0.5``. Setting :attr:`enabled` switches mixing off (or on) in every member.

    With ``mode="sample"`` the choice is made for every sample instead, as timm's
    ``mode="elem"`` does: each chosen member mixes the whole ``(images, labels)`` batch out of
    place, and every sample takes its image and its label row from the output of the member
    drawn for it (so its image and label stay consistent with each other). Members must be
    batchmix transforms returning labels of one shape; the cost is that of each member chosen
    at least once. Use members with ``mode="sample"`` for a λ per sample, as in timm.
    ``mode="pair"`` makes one choice per pair i, B−1−i, for members in pair mode with
    ``partner="flip"``: timm's ``mode="pair"`` with both methods.

    Args:
        transforms: the candidates; batchmix transforms or any callables taking the batch
            (batchmix transforms only with ``mode="sample"``).
        p: non-negative weights, one per transform; normalised to sum to one.
        mode: ``"batch"`` (one choice per call), ``"sample"`` (one per sample) or ``"pair"`` (one
            per pair i, B−1−i, as timm's ``mode="pair"``: members in pair mode with
            ``partner="flip"``, or without partners, such as CutOut).
        generator: CPU generator for the choice; torch's global RNG when ``None``.

    Example:
        >>> mix = RandomMix([MixUp(num_classes=10), CutMix(num_classes=10)], p=[0.2, 0.8])
        >>> _, labels = mix(torch.rand(4, 3, 16, 16), torch.randint(0, 10, (4,)))
        >>> labels.shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        transforms: Sequence[Callable[..., Any]],
        p: Sequence[float] | None = None,
        *,
        mode: Mode = "batch",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.mode: Mode = _check_choice("RandomMix", "mode", mode, MODES)  # type: ignore[assignment]
        if (
            isinstance(transforms, nn.Module)
            or not isinstance(transforms, Sequence)
            or not transforms
        ):
            raise ValueError(
                f"RandomMix: expected a non-empty list of transforms, got {transforms!r}."
            )
        for transform in transforms:
            if not callable(transform):
                raise TypeError(
                    f"RandomMix: expected callable transforms, got {type(transform).__name__}."
                )
            if self.mode != "batch" and not isinstance(transform, _BatchTransform):
                raise TypeError(
                    "RandomMix: expected batchmix transforms (CutMix, MixUp, ...) with "
                    f"mode={self.mode!r}, got {type(transform).__name__}."
                )
            paired = getattr(transform, "mode", "pair") == "pair"
            if self.mode == "pair" and not (
                paired and getattr(transform, "partner", "flip") == "flip"
            ):
                raise ValueError(
                    "RandomMix: expected members that mix in timm's pairs with mode='pair' "
                    "(mode='pair', partner='flip'; or no partner, as CutOut and Jigsaw), got "
                    f"{transform!r}."
                )
        if self.mode != "batch" and any(getattr(t, "_reads_masks", False) for t in transforms):
            raise ValueError(
                f"RandomMix: expected members that work without masks with mode={self.mode!r} "
                "(it mixes one image batch and its labels), got a Transplantation, which needs "
                "segmentation masks; use mode='batch'."
            )
        if self.mode != "batch":
            # Each sample takes its label row from its own member: the rows must match.
            classes = [getattr(t, "num_classes", None) for t in transforms]
            if len({k for k in classes if k is not None}) > 1:
                raise ValueError(
                    f"RandomMix: expected members with one num_classes with mode={self.mode!r} "
                    f"(their label rows are combined), got {classes}."
                )
        if isinstance(p, Tensor | np.ndarray):
            p = p.tolist()
        if p is not None and (isinstance(p, str | bytes | Mapping) or not isinstance(p, Iterable)):
            raise TypeError(
                f"RandomMix: expected p to be a list of weights, one per transform, got "
                f"{p!r}; timm's switch_prob=s with [MixUp, CutMix] is p=[1 - s, s]."
            )
        weights: list[Any] = [1.0] * len(transforms) if p is None else [_scalar(w) for w in p]
        if len(weights) != len(transforms):
            raise ValueError(
                f"RandomMix: expected one weight per transform ({len(transforms)}), got {len(weights)}."
            )
        if (
            any(
                not isinstance(w, numbers.Real) or isinstance(w, bool) or not _finite_weight(w)
                for w in weights
            )
            or not 0 < _float_sum(weights) < math.inf
        ):
            raise ValueError(
                "RandomMix: expected finite non-negative weights with a positive, finite sum, "
                f"got {list(weights)!r}."
            )
        modules = [t for t in transforms if isinstance(t, nn.Module)]
        self.members = nn.ModuleList(modules)
        self.transforms = list(transforms)
        total = _float_sum(weights)
        self.p = [float(w) / total for w in weights]
        self.generator = _check_generator("RandomMix", generator)

    def _check_blendable(self, dtypes: list[torch.dtype]) -> None:
        """Refuses, on every call, the image dtypes one of the members would refuse when drawn
        (members of weight 0, which are never drawn, do not count)."""
        blender = next(
            (
                t
                for t, weight in zip(self.transforms, self.p, strict=True)
                if getattr(t, "_blends", False) and weight > 0
            ),
            None,
        )
        for dtype in dtypes:
            if blender is not None and not (dtype.is_floating_point or dtype == torch.uint8):
                raise TypeError(
                    f"RandomMix: expected floating or uint8 images, since its member "
                    f"{type(blender).__name__} blends pixels, got {dtype}."
                )

    @property
    def enabled(self) -> bool:
        """Whether any member still mixes; setting it sets every member that has the switch."""
        return any(getattr(t, "enabled", True) for t in self.transforms)

    @enabled.setter
    def enabled(self, value: bool) -> None:
        for transform in self.transforms:
            if hasattr(transform, "enabled"):
                transform.enabled = bool(value)

    def forward(self, *inputs: Any) -> Any:
        """Applies the chosen transform to the batch."""
        return self.mix_batch(*inputs)

    def mix_batch(self, *inputs: Any, inplace: bool | None = None) -> Any:
        """Like calling it, with ``inplace`` passed on to batchmix members."""
        if self.mode != "batch":
            return self._mix_per_sample(inputs, bool(inplace))
        self._check_writable(inputs, inplace)
        self._check_boxes(inputs)
        blender = next((t for t in self.transforms if getattr(t, "_blends", False)), None)
        if blender is not None:  # whichever member is drawn, the same dtypes are refused
            assert isinstance(blender, _BatchTransform)
            parsed = parse_sample(
                "RandomMix", inputs, blender._labels_getter, labels_required=False
            )
            self._check_blendable([image.dtype for image in parsed.images])
        transform = self._choose()
        mix = getattr(transform, "mix_batch", None)
        if mix is not None:
            return mix(*inputs, inplace=inplace)
        return transform(*inputs)

    def _check_boxes(self, inputs: tuple[Any, ...]) -> None:
        """Refuses detection boxes, before a member is drawn, when a member that may be drawn
        refuses them (FMix, GridMix, Jigsaw, Transplantation)."""
        refusing = [
            t
            for t, weight in zip(self.transforms, self.p, strict=True)
            if weight > 0 and isinstance(t, _BatchTransform) and not t._mixes_boxes
        ]
        if not refusing:
            return
        parsed = parse_sample(
            "RandomMix", inputs, refusing[0]._labels_getter, labels_required=False
        )
        if parsed.has_boxes:
            names = ", ".join(sorted({type(t).__name__ for t in refusing}))
            raise ValueError(
                f"RandomMix: expected no bounding boxes, since members that refuse them may be "
                f"drawn ({names}); give those weight 0, or mix boxes with CutMix, MixUp, "
                "SaliencyMix, ResizeMix or Mosaic."
            )

    def _check_writable(self, inputs: tuple[Any, ...], inplace: bool | None) -> None:
        """Refuses, before a member is drawn, a batch that a member drawn with non-zero weight
        would have to write in place and cannot (see ``_BatchTransform._mix``)."""
        writers = [
            t
            for t, weight in zip(self.transforms, self.p, strict=True)
            if weight > 0 and isinstance(t, _BatchTransform) and t._may_write(inplace)
        ]
        if not writers:
            return
        parsed = parse_sample("RandomMix", inputs, writers[0]._labels_getter, labels_required=False)
        masks = parsed.masks if any(t._writes_masks for t in writers) else []
        _check_writable("RandomMix", parsed.images + masks)

    def _mix_samples(self, batch: Tensor, labels: Any, samples: list[Tensor]) -> Any:
        """:class:`MixCollate`'s path (see ``_BatchTransform._mix_samples``)."""
        if type(self).mix_batch is not RandomMix.mix_batch or self.mode != "batch":
            _stack(samples, batch)  # overridden (call the override) or a choice per sample
            return self.mix_batch([batch, labels], inplace=True)
        self._check_blendable([batch.dtype])
        transform = self._choose()
        mix = getattr(transform, "_mix_samples", None)
        if mix is not None:
            return mix(batch, labels, samples)
        _stack(samples, batch)
        mix = getattr(transform, "mix_batch", None)
        if mix is not None:
            return mix([batch, labels], inplace=True)
        return transform([batch, labels])

    def _mix_per_sample(self, inputs: tuple[Any, ...], inplace: bool) -> Any:
        """``mode="sample"``: each sample's image and label row from the member drawn for it;
        ``mode="pair"``: the member drawn for the first of the pair i, B−1−i serves both.

        Members are called on the sample as given (their own ``labels_getter`` finds the
        labels) and out of place; their outputs are read back the same way.
        """
        first = self.transforms[0]
        assert isinstance(first, _BatchTransform)  # checked in __init__
        getter = first._labels_getter
        parsed = parse_sample("RandomMix", inputs, getter, labels_required=True)
        if parsed.masks or parsed.has_boxes or len(parsed.image_positions) != 1:
            raise ValueError(
                f"RandomMix: expected one image batch and its labels with mode={self.mode!r}, "
                "got masks, boxes or several image batches; use mode='batch' for those."
            )
        images = parsed.images[0]
        self._check_blendable([images.dtype])
        if inplace:  # before the draws; members mix out of place, into a batch copied back
            mixes = any(
                weight > 0 and isinstance(t, _BatchTransform) and t._may_write(True)
                for t, weight in zip(self.transforms, self.p, strict=True)
            )
            if mixes:
                _check_writable("RandomMix", [images])
        generator = sampling.resolve_generator(self.generator)
        batch = images.shape[0]
        choice = (
            torch.multinomial(
                torch.tensor(self.p, dtype=torch.float64), batch, replacement=True,
                generator=generator,
            )
            if batch
            else torch.zeros(1, dtype=torch.long)
        )  # fmt: skip
        if self.mode == "pair" and batch:
            own = torch.arange(batch)
            choice = choice[torch.minimum(own, own.flip(0))]
        outputs: list[tuple[Tensor, Tensor, Tensor]] = []  # (chosen, images, label rows)
        for member in torch.unique(choice).tolist():
            transform = self.transforms[member]
            assert isinstance(transform, _BatchTransform)
            out = parse_sample(
                "RandomMix",
                (transform.mix_batch(*inputs, inplace=False),),
                transform._labels_getter,
                labels_required=True,
            )
            assert out.labels is not None
            outputs.append((choice == member, out.images[0], out.labels))
        _, mixed, rows = outputs[0]  # one member drawn: its output as it is
        if len(outputs) > 1:
            # Images: untouched when no member mixed any (the input itself, as every transform
            # returns it then); label rows: always each sample's own member's format.
            combine_images = any(member_images is not images for _, member_images, _ in outputs)
            if combine_images and mixed is images:
                mixed = mixed.clone()  # never write into the caller's batch
            if rows is parsed.labels:
                rows = rows.clone()
            for chosen, member_images, member_rows in outputs[1:]:
                if member_rows.shape != rows.shape or member_rows.dtype != rows.dtype:
                    raise ValueError(
                        "RandomMix: expected every member to return labels of one shape and "
                        f"dtype with mode={self.mode!r}, got {tuple(rows.shape)} {rows.dtype} and "
                        f"{tuple(member_rows.shape)} {member_rows.dtype}."
                    )
                if combine_images:
                    mixed[chosen.to(mixed.device)] = member_images[chosen.to(member_images.device)]
                rows[chosen.to(rows.device)] = member_rows[chosen.to(member_rows.device)]
        if inplace and mixed is not images:
            mixed = images.copy_(mixed)
        return parsed.rebuild([mixed], [], rows)

    def _choose(self) -> Callable[..., Any]:
        generator = sampling.resolve_generator(self.generator)
        choice = int(
            torch.multinomial(torch.tensor(self.p, dtype=torch.float64), 1, generator=generator)
        )
        return self.transforms[choice]

    def extra_repr(self) -> str:
        return f"p={self.p}" if self.mode == "batch" else f"p={self.p}, mode={self.mode!r}"

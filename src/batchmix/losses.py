"""Losses for mixed targets: soft-label cross-entropy and its multi-label (binary) form."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MixCrossEntropy", "mix_cross_entropy"]

Reduction = Literal["mean", "sum", "none"]


def mix_cross_entropy(
    logits: Tensor, target: Tensor, *, multi_label: bool = False, reduction: Reduction = "mean"
) -> Tensor:
    """Cross-entropy for class indices ``(B,)`` or mixed/soft rows ``(B, K)``.

    With ``multi_label=False`` this is ``F.cross_entropy`` (softmax over classes; rows are
    probabilities). With ``multi_label=True`` every class is an independent binary decision and
    the loss is ``F.binary_cross_entropy_with_logits`` summed over classes, the usual choice for
    multi-label data, where mixed rows hold per-class probabilities that need not sum to one.
    Summed, not averaged: it is K times ``nn.BCEWithLogitsLoss()`` (and timm's
    ``BinaryCrossEntropy``) with their default mean over classes too, so with SGD a learning
    rate tuned for those wants dividing by K.

    Args:
        logits: ``(B, K)`` unnormalised scores.
        target: ``(B,)`` class indices or ``(B, K)`` floating targets.
        multi_label: binary per-class loss instead of softmax cross-entropy.
        reduction: ``"mean"`` over the batch, ``"sum"`` or ``"none"`` (one value per sample).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(
            f"mix_cross_entropy: expected reduction 'mean', 'sum' or 'none', got {reduction!r}."
        )
    if logits.ndim != 2:
        raise ValueError(
            f"mix_cross_entropy: expected logits of shape (B, K), got {tuple(logits.shape)}."
        )
    if target.ndim == 2 and target.shape != logits.shape:
        raise ValueError(
            f"mix_cross_entropy: expected targets of shape {tuple(logits.shape)}, got {tuple(target.shape)}."
        )
    if target.ndim not in (1, 2) or (target.ndim == 1 and target.shape[0] != logits.shape[0]):
        raise ValueError(
            f"mix_cross_entropy: expected targets of shape ({logits.shape[0]},) or "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}."
        )
    if target.ndim == 1 and (
        target.is_floating_point() or target.is_complex() or target.dtype == torch.bool
    ):
        raise ValueError(
            f"mix_cross_entropy: expected (B,) targets to be integer class indices, got "
            f"{target.dtype}; soft or mixed targets are (B, K) rows."
        )
    if target.ndim == 1:
        target = target.long()  # int32 and the like, as class indices
    elif not target.is_floating_point():
        target = target.to(logits.dtype)  # integer rows, e.g. from F.one_hot
    if not multi_label:
        return F.cross_entropy(logits, target, reduction=reduction)
    if target.ndim == 1:
        target = F.one_hot(target, logits.shape[1])
    per_sample = F.binary_cross_entropy_with_logits(
        logits, target.to(logits.dtype), reduction="none"
    ).sum(dim=1)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


class MixCrossEntropy(nn.Module):
    """Module form of :func:`mix_cross_entropy`.

    Example:
        >>> loss = MixCrossEntropy()
        >>> float(loss(torch.zeros(2, 4), torch.full((2, 4), 0.25))) > 0
        True
    """

    def __init__(self, *, multi_label: bool = False, reduction: Reduction = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"MixCrossEntropy: expected reduction 'mean', 'sum' or 'none', got {reduction!r}."
            )
        self.multi_label = multi_label
        self.reduction: Reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return mix_cross_entropy(
            logits, target, multi_label=self.multi_label, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"multi_label={self.multi_label}, reduction={self.reduction!r}"

"""Losses for mixed targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import batchmix


class TestMixCrossEntropy:
    def test_soft_targets_equal_cross_entropy(self) -> None:
        logits = torch.randn(5, 4, requires_grad=True)
        _, target = batchmix.MixUp(num_classes=4)(torch.rand(5, 3, 4, 4), torch.randint(0, 4, (5,)))
        loss = batchmix.MixCrossEntropy()(logits, target)
        manual = -(target * logits.log_softmax(1)).sum(1).mean()
        torch.testing.assert_close(loss, manual)
        torch.testing.assert_close(loss, F.cross_entropy(logits, target))
        loss.backward()
        assert logits.grad is not None

    def test_index_targets(self) -> None:
        logits, target = torch.randn(5, 4), torch.randint(0, 4, (5,))
        torch.testing.assert_close(
            batchmix.mix_cross_entropy(logits, target), F.cross_entropy(logits, target)
        )

    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    def test_multi_label(self, reduction: str) -> None:
        logits = torch.randn(6, 5)
        target = (torch.rand(6, 5) > 0.5).float()
        mixed = batchmix.MixUp()(torch.rand(6, 1, 2, 2), target)[1]
        loss = batchmix.MixCrossEntropy(multi_label=True, reduction=reduction)(logits, mixed)  # type: ignore[arg-type]
        per_sample = F.binary_cross_entropy_with_logits(logits, mixed, reduction="none").sum(1)
        expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[
            reduction
        ]
        torch.testing.assert_close(loss, expected)

    def test_multi_label_accepts_indices(self) -> None:
        logits, target = torch.randn(3, 4), torch.tensor([0, 3, 1])
        loss = batchmix.mix_cross_entropy(logits, target, multi_label=True)
        expected = (
            F.binary_cross_entropy_with_logits(
                logits, F.one_hot(target, 4).float(), reduction="sum"
            )
            / 3
        )
        torch.testing.assert_close(loss, expected)

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"expected logits of shape \(B, K\), got \(3,\)"):
            batchmix.mix_cross_entropy(torch.randn(3), torch.tensor([0, 1, 2]))
        with pytest.raises(ValueError, match=r"expected targets of shape \(3, 4\), got \(3, 5\)"):
            batchmix.mix_cross_entropy(torch.randn(3, 4), torch.rand(3, 5))
        with pytest.raises(
            ValueError, match=r"expected targets of shape \(3,\) or \(3, 4\), got \(2,\)"
        ):
            batchmix.mix_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1]))
        with pytest.raises(ValueError, match="MixCrossEntropy: expected reduction"):
            batchmix.MixCrossEntropy(reduction="avg")  # type: ignore[arg-type]
        for multi_label in (False, True):
            with pytest.raises(ValueError, match="mix_cross_entropy: expected reduction"):
                batchmix.mix_cross_entropy(
                    torch.randn(3, 4),
                    torch.tensor([0, 1, 2]),
                    multi_label=multi_label,
                    reduction="avg",  # type: ignore[arg-type]
                )
            with pytest.raises(ValueError, match=r"\(B,\) targets to be integer class indices"):
                batchmix.mix_cross_entropy(
                    torch.randn(3, 4), torch.tensor([0.0, 1.0, 2.0]), multi_label=multi_label
                )

    @pytest.mark.parametrize("multi_label", [False, True])
    def test_integer_targets_of_any_width(self, multi_label: bool) -> None:
        logits, target = torch.randn(3, 4), torch.tensor([0, 3, 1])
        expected = batchmix.mix_cross_entropy(logits, target, multi_label=multi_label)
        for same in (target.int(), F.one_hot(target, 4), F.one_hot(target, 4).to(torch.uint8)):
            loss = batchmix.mix_cross_entropy(logits, same, multi_label=multi_label)
            torch.testing.assert_close(loss, expected)

"""Classifiers that end in global average pooling and one linear layer, so CAM applies.

* ``small-resnet``: a three-stage ResNet (He et al. 2016) for 16–64 px inputs; widths
  ``w, 2w, 4w`` with strides 1, 2, 2.
* ``resnet18`` / ``resnet50``: torchvision's ResNets with ``num_classes`` and the input channels
  adapted; for inputs under 96 px the stem becomes a 3×3 stride-1 convolution without max
  pooling (the usual CIFAR variant), so small images keep a useful feature-map size.

Every model exposes ``features(x) -> (B, C, h, w)`` (the last convolutional maps) and
``fc`` (the linear layer on their spatial mean): what :mod:`batchmix.app.cam` needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from batchmix.app.config import MODELS
from batchmix.app.errors import AppError

__all__ = ["CamClassifier", "SmallResNet", "TorchvisionResNet", "build_model"]


class CamClassifier(nn.Module):
    """A classifier ``fc(mean over space of features(x))``."""

    fc: nn.Linear

    def features(self, x: Tensor) -> Tensor:
        """The last convolutional feature maps, ``(B, C, h, w)``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, C, H, W)``."""
        logits: Tensor = self.fc(self.features(x).mean(dim=(2, 3)))
        return logits


class _Block(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(CamClassifier):
    """A small ResNet: stem, three stages of ``blocks`` residual blocks, GAP, linear.

    Args:
        in_channels: image channels.
        num_classes: outputs of the linear layer.
        width: channels of the first stage (the others have 2× and 4×).
        blocks: residual blocks per stage.

    Example:
        >>> model = SmallResNet(in_channels=1, num_classes=10, width=8)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 32, blocks: int = 1
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers: list[nn.Module] = []
        channels = width
        for stage, stride in enumerate((1, 2, 2)):
            for block in range(blocks):
                outputs = width * 2**stage
                layers.append(_Block(channels, outputs, stride if block == 0 else 1))
                channels = outputs
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))  # type: ignore[no-any-return]


class TorchvisionResNet(CamClassifier):
    """torchvision's ResNet-18 or -50 (untrained), adapted to the data.

    Args:
        name: ``"resnet18"`` or ``"resnet50"``.
        in_channels: image channels (the first convolution is rebuilt when not 3).
        num_classes: outputs of the linear layer.
        image_size: side of the inputs; under 96 px the stem is the CIFAR variant.
    """

    def __init__(self, name: str, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        from torchvision import models

        build = models.resnet18 if name == "resnet18" else models.resnet50
        net = build(weights=None, num_classes=num_classes)
        if image_size < 96:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.body = nn.Sequential(
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.fc = net.fc

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # type: ignore[no-any-return]


def build_model(
    name: str, *, in_channels: int, num_classes: int, image_size: int, width: int = 32
) -> CamClassifier:
    """Builds model ``name`` (one of :data:`batchmix.app.config.MODELS`).

    Raises:
        AppError: for an unknown name.
    """
    if name == "small-resnet":
        return SmallResNet(in_channels, num_classes, width)
    if name in ("resnet18", "resnet50"):
        return TorchvisionResNet(name, in_channels, num_classes, image_size)
    raise AppError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}.")

"""batchmix: batch-mixing data augmentation for PyTorch.

CutMix, MixUp and CutOut as drop-in replacements for ``torchvision.transforms.v2.CutMix`` and
``MixUp``, with apply probability, per-sample λ, label smoothing, uint8 support, in-place mixing
in the DataLoader's collate function and reproducible randomness.
"""

from batchmix import functional, saliency, sampling
from batchmix.collate import MixCollate
from batchmix.losses import MixCrossEntropy, mix_cross_entropy
from batchmix.mixers import (
    FMix,
    GridMix,
    Jigsaw,
    Mosaic,
    ResizeMix,
    SaliencyMix,
    Transplantation,
)
from batchmix.transforms import CutMix, CutOut, MixParams, MixUp, RandomMix

__all__ = [
    "CutMix",
    "CutOut",
    "FMix",
    "GridMix",
    "Jigsaw",
    "MixCollate",
    "MixCrossEntropy",
    "MixParams",
    "MixUp",
    "Mosaic",
    "RandomMix",
    "ResizeMix",
    "SaliencyMix",
    "Transplantation",
    "functional",
    "mix_cross_entropy",
    "saliency",
    "sampling",
]

__version__ = "0.1.0"

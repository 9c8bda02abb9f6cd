"""Saliency maps for SaliencyMix: spectral residual (Hou & Zhang, CVPR 2007).

SaliencyMix (Uddin et al., ICLR 2021) places the CutMix box on the most salient point of the
source image. Its reference implementation uses OpenCV's fine-grained static saliency
(Montabone & Soto 2010); this module computes a spectral-residual map instead, in torch, for a
whole batch at once, so that no OpenCV is needed. The two maps differ, and so can the box
centres; :class:`batchmix.SaliencyMix` takes any map through ``saliency=``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["peak", "spectral_residual"]


def _gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    maps = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(maps, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))


def spectral_residual(images: Tensor, size: int = 64) -> Tensor:
    """Spectral-residual saliency ``(B, H, W)`` (float32, larger = more salient).

    The grey image is shrunk to ``size``×``size``; the saliency is the squared inverse Fourier
    transform of the log-amplitude spectrum minus its 3×3 local mean, with the phase kept,
    blurred and resized back to ``H``×``W``.

    Args:
        images: ``(B, ..., H, W)`` floating or uint8 batch; all leading channels are averaged.
        size: working resolution.
    """
    height, width = images.shape[-2:]
    grey = (
        images.float().flatten(1, -3).mean(1, keepdim=True)
        if images.ndim > 3
        else images.float().unsqueeze(1)
    )
    small = F.interpolate(
        grey, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    spectrum = torch.fft.fft2(small)
    log_amplitude = torch.log(spectrum.abs().clamp(min=1e-8))
    residual = log_amplitude - F.avg_pool2d(
        log_amplitude, 3, stride=1, padding=1, count_include_pad=False
    )
    saliency = torch.fft.ifft2(torch.exp(torch.complex(residual, torch.angle(spectrum)))).abs() ** 2
    saliency = _gaussian_blur(saliency, sigma=size / 24)
    return F.interpolate(saliency, size=(height, width), mode="bilinear", align_corners=False)[:, 0]


def peak(saliency: Tensor) -> Tensor:
    """The most salient pixel of each map: ``(B, 2)`` int64 as ``(x, y)``."""
    width = saliency.shape[-1]
    flat = saliency.flatten(1).argmax(dim=1)
    return torch.stack([flat % width, flat // width], dim=1)

"""Helpers shared by the application's tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes a uint8 array as a gzipped idx file (the format of the MNIST family)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape
    )
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_arrays(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright rectangles on black 28×28 images; the class sets the rectangle's shape."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    for i, label in enumerate(labels):
        height, width = 6 + 2 * (label % 5), 6 + 3 * (label // 5) + (label % 3)
        top, left = rng.integers(0, 28 - height + 1), rng.integers(0, 28 - width + 1)
        images[i, top : top + height, left : left + width] = 120 + 13 * label
    return images, labels


#: Options that make a digits run take about a second.
TINY = ("--data", "digits", "--width", "8", "--batch-size", "64", "--no-progress", "--threads", "1")

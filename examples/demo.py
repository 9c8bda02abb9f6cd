"""Shows the library on real photos: shapes before and after mixing, and a grid of
Original / MixUp / CutOut / CutMix and the other mixers, built from scikit-image's bundled
colour photos.

Run with ``make demo`` or ``python examples/demo.py --out out/demo``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from skimage import data
from torchvision.transforms.v2 import functional as TF

import batchmix

PHOTOS = {
    "cat": data.chelsea,
    "coffee": data.coffee,
    "astronaut": data.astronaut,
    "rocket": data.rocket,
}


def load_photos(size: int) -> tuple[torch.Tensor, list[str]]:
    """The bundled photos as one uint8 batch ``(B, 3, size, size)``, centre-cropped."""
    images = []
    for make in PHOTOS.values():
        image = torch.from_numpy(make()).permute(2, 0, 1)
        image = TF.resize(image, size, antialias=True)
        images.append(TF.center_crop(image, [size, size]))
    return torch.stack(images), list(PHOTOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    images, names = load_photos(args.size)
    labels = torch.arange(len(names))
    k = len(names)
    methods = {
        "MixUp": batchmix.MixUp(num_classes=k),
        "CutOut": batchmix.CutOut(size=args.size // 2, num_classes=k),
        "CutMix": batchmix.CutMix(num_classes=k),
        "ResizeMix": batchmix.ResizeMix(num_classes=k),
        "FMix": batchmix.FMix(num_classes=k),
        "SaliencyMix": batchmix.SaliencyMix(num_classes=k),
        "GridMix": batchmix.GridMix(num_classes=k),
        "Mosaic": batchmix.Mosaic(num_classes=k),
        "Jigsaw": batchmix.Jigsaw(grid=(4, 4), num_classes=k),
    }
    torch.manual_seed(args.seed)
    rows = {"Original": (images, torch.nn.functional.one_hot(labels, len(names)).float())}
    for name, transform in methods.items():
        print(f"Before {name}: {images.shape = }, {labels.shape = }")
        mixed, targets = transform(images, labels)
        print(f"After {name}: {mixed.shape = }, {targets.shape = }")
        rows[name] = (mixed, targets)

    figure, axes = plt.subplots(len(names), len(rows), figsize=(2.4 * len(rows), 2.9 * len(names)))
    for column, (method, (batch, targets)) in enumerate(rows.items()):
        for row in range(len(names)):
            axis = axes[row, column]
            axis.imshow(batch[row].permute(1, 2, 0).numpy())
            parts = [
                f"{names[c]} {float(w):.2f}" for c, w in enumerate(targets[row]) if float(w) > 0.005
            ]
            weights = "\n".join(", ".join(parts[k : k + 2]) for k in range(0, len(parts), 2))
            axis.set_title(f"{method}\n{weights}", fontsize=8)
            axis.axis("off")
    figure.tight_layout()
    path = args.out / "mixed_grid.png"
    figure.savefig(path, dpi=72)
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()

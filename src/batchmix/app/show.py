"""``show``: the Original / MixUp / CutOut / CutMix grid on real photos.

The photos are scikit-image's bundled colour pictures (a cat, coffee, an astronaut, a rocket),
or the image files directly inside a folder of the user's; each photo is its own class, so the
titles show how much of each photo a mixed image's label holds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from batchmix.app.data import load_image
from batchmix.app.errors import AppError
from batchmix.app.figures import mix_examples, save_mixed_grid

__all__ = ["BUNDLED_PHOTOS", "load_photos", "run_show"]

BUNDLED_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
_NAMES = {"chelsea": "cat"}


def load_photos(folder: Path | None, size: int, count: int) -> tuple[Tensor, list[str]]:
    """``count`` photos as uint8 ``(B, 3, size, size)`` with their names.

    Raises:
        AppError: the folder is missing, holds fewer than two images, or an unreadable file.
    """
    if folder is None:
        from skimage import data

        images, names = [], []
        for name in BUNDLED_PHOTOS[:count]:
            photo = torch.from_numpy(getattr(data, name)().copy()).permute(2, 0, 1)
            images.append(_square(photo, size))
            names.append(_NAMES.get(name, name))
        return torch.stack(images), names
    if not folder.is_dir():
        raise AppError(f"--images {folder} is not a folder of images.")
    from PIL import Image

    extensions = Image.registered_extensions()  # suffix -> format, readable or not
    readable = {suffix for suffix, kind in extensions.items() if kind in Image.OPEN}
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in readable
    )[:count]
    if len(files) < 2:
        raise AppError(f"--images {folder}: expected at least 2 image files, found {len(files)}.")
    images = []
    for path in files:
        try:
            images.append(load_image(path, size))
        except (OSError, ValueError, SyntaxError) as error:
            raise AppError(
                f"{path} is not a readable image ({type(error).__name__}: {error})."
            ) from None
    return torch.stack(images), [p.stem for p in files]


def _square(image: Tensor, size: int) -> Tensor:
    from torchvision.transforms.v2 import functional as TF

    resized = TF.resize(image, size, antialias=True)
    cropped: Tensor = TF.center_crop(resized, [size, size])
    return cropped


def run_show(
    path: Path, *, folder: Path | None, size: int, count: int, seed: int, overwrite: bool
) -> Path:
    """Writes the grid to the PNG file ``path`` and returns it."""
    if size < 8 or count < 2:
        raise AppError(f"show: expected --size >= 8 and --count >= 2, got {size} and {count}.")
    if path.exists() and not overwrite:
        raise AppError(f"{path} already exists; pass --overwrite to replace it.")
    images, names = load_photos(folder, size, count)
    examples = mix_examples(
        images.float() / 255, torch.arange(len(names)), len(names), seed=seed, cutout_size=size // 2
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_mixed_grid(path, examples, names)

"""Datasets for the application, held in memory as uint8 tensors (image folders with
``--lazy-images``: as file paths, decoded when an item is read).

* ``fashion-mnist``: 28×28 grey clothes, 10 classes, read from the idx ``.gz`` files in
  ``--data-dir``, else in the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), else downloaded by torchvision when online.
* ``fashion-mnist-loc``: each Fashion-MNIST item pasted at a random (but fixed) place on a larger
  black canvas, with its true bounding box recorded: a weakly-supervised localisation benchmark.
* ``digits``: scikit-learn's 8×8 digits (always offline), upscaled; for fast tests.
* ``imagefolder``: ``root/<class>/<image>`` (or ``root/train/...`` and ``root/test|val/...``),
  decoded once into memory, or, with ``--lazy-images``, whenever an item is read.
* ``cifar10`` / ``cifar100``: through torchvision, downloaded when online.

Training items get the standard augmentation (random crop from a zero-padded image, horizontal
flip where the data allows it), drawn from torch's random stream, which the training loop seeds
per epoch (and the DataLoader per worker).
"""

from __future__ import annotations

import functools
import gzip
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from batchmix.app.config import TrainConfig
from batchmix.app.errors import AppError

__all__ = [
    "FASHION_CLASSES",
    "IMAGE_SUFFIXES",
    "SYSTEM_FASHION_MNIST",
    "Data",
    "ImageDataset",
    "ImageFiles",
    "SkippedFilesWarning",
    "load_data",
    "load_image",
    "read_idx",
]

#: Where the Debian package ``dataset-fashion-mnist`` installs its files.
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: Where downloads go when ``--data-dir`` is not given.
CACHE_DIR = Path.home() / ".cache" / "batchmix"
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: How many training images (the first ones) the normalisation statistics are computed from.
STATS_IMAGES = 4096
# A fixed seed for everything about the data itself (subsets, splits, canvas positions): every
# training seed sees the same images, so the spread over seeds measures training alone.
DATA_SEED = 0


class SkippedFilesWarning(UserWarning):
    """Unreadable files in an image folder were skipped (``--skip-bad-images``)."""


class ImageDataset(Dataset[tuple[Tensor, int]]):
    """uint8 images ``(N, C, H, W)`` with labels, returned as normalised float tensors.

    Args:
        images: ``(N, C, H, W)`` uint8, or the :class:`ImageFiles` that decode to them.
        labels: ``(N,)`` int64 class indices.
        mean: per-channel mean of the [0, 1] pixels, subtracted after augmentation.
        std: per-channel standard deviation, divided out.
        augment: draw a random crop (``pad`` pixels of zero padding) and, if ``flip``, a
            horizontal flip per item.
        pad: padding for the random crop.
        flip: whether a mirrored image is still of its class (not for digits).
        offsets: ``(N, 2)`` top-left ``(y, x)`` positions on a ``canvas``-sized black canvas
            (the localisation variant); ``None`` for plain images.
        canvas: side of the canvas.
    """

    def __init__(
        self,
        images: Tensor | ImageFiles,
        labels: Tensor,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: bool = False,
        pad: int = 0,
        flip: bool = False,
        offsets: Tensor | None = None,
        canvas: int | None = None,
    ) -> None:
        self.images = images
        self.labels = labels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.augment = augment
        self.pad = pad
        self.flip = flip
        self.offsets = offsets
        self.canvas = canvas

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def raw(self, index: int) -> Tensor:
        """Item ``index`` as uint8 ``(C, H, W)``, before augmentation and normalisation."""
        image = self.images[index]
        if self.offsets is None or self.canvas is None:
            return image
        y, x = (int(v) for v in self.offsets[index])
        board = torch.zeros(image.shape[0], self.canvas, self.canvas, dtype=torch.uint8)
        board[:, y : y + image.shape[1], x : x + image.shape[2]] = image
        return board

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.raw(index).float().div_(255)
        if self.augment:
            image = self._augment(image)
        return (image - self.mean) / self.std, int(self.labels[index])

    def _augment(self, image: Tensor) -> Tensor:
        if self.pad > 0:
            height, width = image.shape[1:]
            padded = F.pad(image, (self.pad,) * 4)
            dy, dx = (int(v) for v in torch.randint(0, 2 * self.pad + 1, (2,)))
            image = padded[:, dy : dy + height, dx : dx + width]
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return image

    def denormalise(self, images: Tensor) -> Tensor:
        """Inverse of the normalisation: ``(..., C, H, W)`` back to [0, 1] pixels for figures."""
        return (images * self.std + self.mean).clamp(0, 1)

    def subset(self, indices: Tensor) -> ImageDataset:
        """The items at ``indices`` with the same settings."""
        return ImageDataset(
            self.images[indices],
            self.labels[indices],
            mean=tuple(self.mean.flatten().tolist()),
            std=tuple(self.std.flatten().tolist()),
            augment=self.augment,
            pad=self.pad,
            flip=self.flip,
            offsets=None if self.offsets is None else self.offsets[indices],
            canvas=self.canvas,
        )


@dataclass(frozen=True)
class Data:
    """A dataset's two splits and what a model and report need to know about it.

    Attributes:
        train: the training split (augmented when asked).
        test: the test split (never augmented).
        classes: class names, index order.
        channels: image channels (1 or 3).
        image_size: side of the square images.
        test_boxes: ``(N, 4)`` true boxes ``(x1, y1, x2, y2)`` of the test items (exclusive
            ends, pixels) for datasets that have them, else ``None``.
    """

    train: ImageDataset
    test: ImageDataset
    classes: tuple[str, ...]
    channels: int
    image_size: int
    test_boxes: Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ----------------------------------------------------------------------------- Fashion-MNIST


def read_idx(path: Path) -> np.ndarray:
    """Reads an idx file (``.gz`` or plain) of unsigned bytes into an array of its shape."""
    opener: Callable[..., object] = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:  # type: ignore[attr-defined]
            raw: bytes = stream.read()
    except (OSError, EOFError) as error:
        raise AppError(f"cannot read {path}: {error}.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise AppError(f"{path} is not an idx file of unsigned bytes (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise AppError(
            f"{path} is truncated or corrupt: its header promises shape {shape} "
            f"({header + int(np.prod(shape))} bytes), the file has {len(raw)} bytes."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    """The four idx files in ``folder`` (or torchvision's ``FashionMNIST/raw`` below it)."""
    for candidate in (folder, folder / "FashionMNIST" / "raw"):
        found: dict[str, tuple[Path, Path]] = {}
        for split, names in _FASHION_FILES.items():
            paths = []
            for name in names:
                for suffix in (".gz", ""):
                    if (candidate / (name + suffix)).is_file():
                        paths.append(candidate / (name + suffix))
                        break
            if len(paths) == 2:
                found[split] = (paths[0], paths[1])
        if len(found) == 2:
            return found
    return None


def _fashion_mnist(data_dir: str | None, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train images, train labels, test images, test labels, from the first source that works."""
    tried: list[str] = []
    folders = [Path(data_dir)] if data_dir else []
    folders.append(SYSTEM_FASHION_MNIST)
    for folder in folders:
        files = _find_idx_files(folder)
        if files is not None:
            arrays = [read_idx(path) for split in ("train", "test") for path in files[split]]
            train_x, train_y, test_x, test_y = (torch.from_numpy(a.copy()) for a in arrays)
            if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
                raise AppError(
                    f"the Fashion-MNIST files in {folder} hold unequal numbers of images and labels."
                )
            if tried:  # --data-dir was given and held no files: say what is read instead
                warnings.warn(
                    f"--data-dir {data_dir} holds no Fashion-MNIST idx files; reading them from "
                    f"{folder} instead.",
                    stacklevel=2,
                )
            return train_x.unsqueeze(1), train_y.long(), test_x.unsqueeze(1), test_y.long()
        where = "--data-dir" if data_dir and folder == Path(data_dir) else "the Debian package"
        tried.append(f"{where}: no Fashion-MNIST idx files in {folder}")
    root = Path(data_dir) if data_dir else CACHE_DIR
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            train = FashionMNIST(str(root), train=True, download=True)
            test = FashionMNIST(str(root), train=False, download=True)
            return (
                train.data.unsqueeze(1),
                train.targets.long(),
                test.data.unsqueeze(1),
                test.targets.long(),
            )
        except Exception as error:  # any failure to fetch is reported with the other two
            tried.append(
                f"torchvision download into {root}: failed ({type(error).__name__}: {error})"
            )
    else:
        tried.append(f"torchvision download into {root}: not tried (--no-download)")
    raise AppError(
        "Fashion-MNIST not found. Tried, in order:\n  - "
        + "\n  - ".join(tried)
        + "\nGive --data-dir with the four idx .gz files, install the Debian package "
        "(apt-get install dataset-fashion-mnist), or run once online."
    )


def _object_boxes(images: Tensor) -> Tensor:
    """Tight boxes ``(x1, y1, x2, y2)`` (exclusive ends) around each image's non-zero pixels."""
    on = images.amax(dim=1) > 0  # (N, H, W)
    rows, cols = on.any(dim=2), on.any(dim=1)
    height, width = on.shape[1:]

    def span(mask: Tensor, size: int) -> tuple[Tensor, Tensor]:
        positions = torch.arange(size)
        first = torch.where(mask, positions, size).amin(dim=1)
        last = torch.where(mask, positions, -1).amax(dim=1) + 1
        empty = ~mask.any(dim=1)  # a blank image: its box is the whole image
        return first.masked_fill(empty, 0), last.masked_fill(empty, size)

    y1, y2 = span(rows, height)
    x1, x2 = span(cols, width)
    return torch.stack([x1, y1, x2, y2], dim=1)


# ------------------------------------------------------------------------------- image folders


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def load_image(path: Path, size: int) -> Tensor:
    """One image as uint8 ``(3, size, size)``: shorter side resized to ``size``, centre-cropped."""
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))),
        Image.Resampling.BILINEAR,
    )
    left = (resized.size[0] - size) // 2
    top = (resized.size[1] - size) // 2
    array = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class ImageFiles:
    """Image files decoded when an item is read (``--lazy-images``), in place of a uint8
    ``(N, 3, size, size)`` tensor: indexing with an int decodes that file with
    :func:`load_image`, indexing with a tensor of indices gives the files at those indices."""

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = tuple(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), 3, self.size, self.size)

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: Tensor | slice) -> ImageFiles: ...

    def __getitem__(self, index: int | Tensor | slice) -> Tensor | ImageFiles:
        if isinstance(index, slice):
            return ImageFiles(self.paths[index], self.size)
        if isinstance(index, Tensor) and index.ndim > 0:
            if index.dtype == torch.bool:  # a mask, as for a tensor of images
                index = index.nonzero().flatten()
            return ImageFiles([self.paths[i] for i in index.tolist()], self.size)
        path = self.paths[int(index)]
        try:
            return _decode(path, self.size)
        except _bad_image_errors() as error:
            raise AppError(
                f"{path} could not be decoded ({type(error).__name__}: {error}); with "
                "--lazy-images a file is checked when the data are loaded, but not decoded. "
                "Replace it with a readable image (removing it changes the data set)."
            ) from None


@functools.cache
def _bad_image_errors() -> tuple[type[BaseException], ...]:
    """What Pillow raises for a file that is not a readable image."""
    from PIL import Image

    return (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    )


def _decode(path: Path, size: int) -> Tensor:
    """:func:`load_image`, with Pillow's decompression-bomb warning raised as an error."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return load_image(path, size)


def _check_header(path: Path) -> None:
    """Opens ``path`` as an image and checks what Pillow can without decoding (for PNG, every
    chunk's checksum, which reads the whole file); raises one of :func:`_bad_image_errors`
    when it is not an image."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as opened:
            opened.verify()


def _refuse_or_skip(bad: list[str], where: str, skip_bad: bool) -> None:
    """Stops the run naming the unreadable files (``"path (error)"``), or with ``skip_bad``
    names them in a warning; nothing when there are none."""
    if bad and not skip_bad:
        shown = "\n  ".join(bad[:5]) + (f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise AppError(
            f"{len(bad)} file(s) {where} are not readable images:\n  {shown}\n"
            "Remove them, or pass --skip-bad-images to leave them out with a warning."
        )
    if bad:
        warnings.warn(
            f"skipped {len(bad)} unreadable file(s) {where}: "
            + "; ".join(bad[:5])
            + (" ..." if len(bad) > 5 else ""),
            SkippedFilesWarning,
            stacklevel=3,
        )


def _decode_first(
    files: ImageFiles, labels: Tensor, count: int, skip_bad: bool
) -> tuple[ImageFiles, Tensor, list[Tensor]]:
    """Decodes the first ``count`` files (for the normalisation statistics), leaving out with
    ``skip_bad`` (or else refusing) those that passed the header check but do not decode."""
    decoded: list[Tensor] = []
    keep: list[int] = []
    bad: list[str] = []
    for index, path in enumerate(files.paths[:count]):
        try:
            decoded.append(_decode(path, files.size))
        except _bad_image_errors() as error:
            bad.append(f"{path} ({type(error).__name__}: {error})")
        else:
            keep.append(index)
    _refuse_or_skip(bad, "among the training images decoded at the start", skip_bad)
    if bad:
        kept = torch.tensor(keep + list(range(count, len(files))), dtype=torch.long)
        files, labels = files[kept], labels[kept]
    if not decoded:
        raise AppError("none of the training images decoded at the start is readable.")
    return files, labels, decoded


def _read_folder(
    root: Path, classes: tuple[str, ...] | None, size: int, skip_bad: bool, lazy: bool = False
) -> tuple[Tensor | ImageFiles, Tensor, tuple[str, ...]]:
    """Reads ``root/<class>/...`` into memory (with ``lazy``, lists the files and checks their
    headers); unreadable files stop the run unless ``skip_bad``."""
    found = tuple(
        sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    if not found:
        raise AppError(f"{root} holds no class folders; expected {root}/<class>/<image files>.")
    if classes is None:
        classes = found
    unknown = [name for name in found if name not in classes]
    if unknown:
        raise AppError(
            f"{root} has classes {unknown} that the training split lacks ({list(classes)})."
        )
    images: list[Tensor] = []
    paths: list[Path] = []
    labels: list[int] = []
    bad: list[str] = []
    for name in found:
        for path in _image_files(root / name):
            try:
                if lazy:
                    _check_header(path)
                    paths.append(path)
                else:
                    images.append(_decode(path, size))
            except _bad_image_errors() as error:
                bad.append(f"{path} ({type(error).__name__}: {error})")
                continue
            labels.append(classes.index(name))
    _refuse_or_skip(bad, f"in {root}", skip_bad)
    if not labels:
        raise AppError(f"{root} holds no readable images.")
    pixels = ImageFiles(paths, size) if lazy else torch.stack(images)
    return pixels, torch.tensor(labels, dtype=torch.long), classes


def _image_folder(
    data_dir: str, size: int, skip_bad: bool, lazy: bool
) -> tuple[Tensor | ImageFiles, Tensor, Tensor | ImageFiles, Tensor, tuple[str, ...]]:
    root = Path(data_dir)
    if not root.is_dir():
        raise AppError(
            f"--data-dir {root} is not a folder; expected an image folder <root>/<class>/<image>."
        )
    test_root = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_root is not None:
        train_x, train_y, classes = _read_folder(root / "train", None, size, skip_bad, lazy)
        test_x, test_y, _ = _read_folder(test_root, classes, size, skip_bad, lazy)
        return train_x, train_y, test_x, test_y, classes
    images, labels, classes = _read_folder(root, None, size, skip_bad, lazy)
    if len(labels) < 2:
        raise AppError(
            f"{root} holds {len(labels)} readable image(s); at least 2 are needed for a split."
        )
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DATA_SEED))
    cut = max(1, len(labels) // 5)
    return (
        images[order[cut:]],
        labels[order[cut:]],
        images[order[:cut]],
        labels[order[:cut]],
        classes,
    )


# ------------------------------------------------------------------------------------- CIFAR


def _cifar(
    name: str, data_dir: str | None, download: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[str, ...]]:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root = Path(data_dir) if data_dir else CACHE_DIR
    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except RuntimeError:
        if not download:
            raise AppError(
                f"{name} not found in {root}, and --no-download forbids fetching it."
            ) from None
        try:
            train = cls(str(root), train=True, download=True)
            test = cls(str(root), train=False, download=True)
        except Exception as error:
            raise AppError(
                f"{name} not found in {root} and its download failed ({type(error).__name__}: {error}); "
                "run once online or give --data-dir with torchvision's CIFAR files."
            ) from None

    def tensors(split: datasets.VisionDataset) -> tuple[Tensor, Tensor]:
        images = torch.from_numpy(np.asarray(split.data)).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(split.targets, dtype=torch.long)

    return (*tensors(train), *tensors(test), tuple(train.classes))


# ----------------------------------------------------------------------------------- loading


def _channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of [0, 1] pixels over (at most) 4096 images."""
    sample = images[:4096].float().div(255)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def _first(count: int | None, total: int, salt: int) -> Tensor:
    """A fixed random choice of ``count`` indices out of ``total`` (all of them when ``None``)."""
    if count is None or count >= total:
        return torch.arange(total)
    generator = torch.Generator().manual_seed(DATA_SEED + salt)
    return torch.randperm(total, generator=generator)[:count].sort().values


def load_data(config: TrainConfig, *, warn: bool = True) -> Data:
    """Loads ``config.data`` with its splits, subsets and augmentation settings; with ``warn``,
    a subset larger than its split is named in a warning (it is then the whole split).

    Raises:
        AppError: the data cannot be found, read or fetched; the message says what was tried.
    """
    name = config.data
    classes: tuple[str, ...]
    train_x: Tensor | ImageFiles
    test_x: Tensor | ImageFiles
    offsets: tuple[Tensor, Tensor] | None = None
    canvas: int | None = None
    flip, pad = True, 0
    if name in ("fashion-mnist", "fashion-mnist-loc"):
        train_x, train_y, test_x, test_y = _fashion_mnist(config.data_dir, config.download)
        classes = FASHION_CLASSES
        pad = 2
        if name == "fashion-mnist-loc":
            canvas = config.image_size or 64
            if canvas < train_x.shape[-1]:
                raise AppError(f"--image-size for fashion-mnist-loc must be >= 28, got {canvas}.")
            pad = 0  # the position already varies; the true box must stay where it was recorded
            room = canvas - train_x.shape[-1] + 1
            generator = torch.Generator().manual_seed(DATA_SEED)
            offsets = (
                torch.randint(0, room, (len(train_y), 2), generator=generator),
                torch.randint(0, room, (len(test_y), 2), generator=generator),
            )
        elif config.image_size not in (None, 28):
            raise AppError(f"fashion-mnist images are 28×28; got --image-size {config.image_size}.")
    elif name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        size = config.image_size or 16
        pixels = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
        images = pixels.round().clamp(0, 255).to(torch.uint8)
        labels = torch.from_numpy(digits.target).long()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DATA_SEED))
        cut = len(labels) // 5
        train_x, train_y = images[order[cut:]], labels[order[cut:]]
        test_x, test_y = images[order[:cut]], labels[order[:cut]]
        classes = tuple(str(d) for d in range(10))
        flip, pad = False, max(1, size // 16)
    elif name == "imagefolder":
        train_x, train_y, test_x, test_y, classes = _image_folder(
            config.data_dir or "",
            config.image_size or 64,
            config.skip_bad_images,
            config.lazy_images,
        )
        pad = train_x.shape[-1] // 8
    else:
        if config.image_size not in (None, 32):
            raise AppError(f"{name} images are 32×32; got --image-size {config.image_size}.")
        train_x, train_y, test_x, test_y, classes = _cifar(name, config.data_dir, config.download)
        pad = 4

    for option, count, total in (
        ("--train-subset", config.train_subset, len(train_y)),
        ("--test-subset", config.test_subset, len(test_y)),
    ):
        if warn and count is not None and count > total and os.environ.get("RANK", "0") == "0":
            warnings.warn(
                f"{option} {count} is more than the {total} images of that split of {name}; "
                f"all {total} are used.",
                stacklevel=2,
            )
    train_index = _first(config.train_subset, len(train_y), 1)
    test_index = _first(config.test_subset, len(test_y), 2)
    train_x, train_y = train_x[train_index], train_y[train_index]
    test_x, test_y = test_x[test_index], test_y[test_index]
    test_boxes = None
    train_offsets = test_offsets = None
    if offsets is not None:
        assert isinstance(test_x, Tensor)  # Fashion-MNIST, held in memory
        train_offsets, test_offsets = offsets[0][train_index], offsets[1][test_index]
        local = _object_boxes(test_x)
        shift = torch.stack([test_offsets[:, 1], test_offsets[:, 0]] * 2, dim=1)
        test_boxes = local + shift

    train = ImageDataset(
        train_x,
        train_y,
        mean=(0.0,),
        std=(1.0,),
        augment=config.augment,
        pad=pad,
        flip=flip,
        offsets=train_offsets,
        canvas=canvas,
    )
    if isinstance(train_x, ImageFiles):  # decoded once here, for the statistics
        train_x, train_y, first = _decode_first(
            train_x, train_y, STATS_IMAGES, config.skip_bad_images
        )
        stats_source = torch.stack(first)
    else:
        stats_source = torch.stack([train.raw(i) for i in range(min(len(train), STATS_IMAGES))])
    mean, std = _channel_stats(stats_source)
    train = ImageDataset(
        train_x,
        train_y,
        mean=mean,
        std=std,
        augment=config.augment,
        pad=pad,
        flip=flip,
        offsets=train_offsets,
        canvas=canvas,
    )
    test = ImageDataset(test_x, test_y, mean=mean, std=std, offsets=test_offsets, canvas=canvas)
    channels, size = int(stats_source.shape[1]), int(stats_source.shape[-1])
    return Data(
        train=train,
        test=test,
        classes=classes,
        channels=channels,
        image_size=size,
        test_boxes=test_boxes,
    )

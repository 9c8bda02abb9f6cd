"""Datasets: Fashion-MNIST's sources and error, the localisation canvas, image folders, digits."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import write_idx
from PIL import Image

from batchmix.app import data as app_data
from batchmix.app.config import TrainConfig
from batchmix.app.data import SkippedFilesWarning, load_data, read_idx
from batchmix.app.errors import AppError


class TestIdx:
    def test_round_trip(self, tmp_path: Path) -> None:
        array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        write_idx(tmp_path / "a.gz", array)
        np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)

    def test_truncated_file_is_named(self, tmp_path: Path) -> None:
        array = np.zeros((5, 28, 28), dtype=np.uint8)
        path = tmp_path / "cut.gz"
        write_idx(path, array)
        raw = gzip.decompress(path.read_bytes())[:-100]
        path.write_bytes(gzip.compress(raw))
        with pytest.raises(AppError, match=r"cut.gz is truncated or corrupt"):
            read_idx(path)

    def test_not_idx(self, tmp_path: Path) -> None:
        (tmp_path / "x").write_bytes(b"hello world")
        with pytest.raises(AppError, match="not an idx file"):
            read_idx(tmp_path / "x")


class TestFashionMnist:
    def test_reads_data_dir(self, fashion_dir: Path, no_system_fashion: Path) -> None:
        data = load_data(
            TrainConfig(data="fashion-mnist", data_dir=str(fashion_dir), download=False)
        )
        assert (len(data.train), len(data.test)) == (256, 64)
        image, label = data.train[0]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32
        assert 0 <= label < 10 and data.num_classes == 10

    def test_reads_the_debian_package_path(
        self, fashion_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(app_data, "SYSTEM_FASHION_MNIST", fashion_dir)
        data = load_data(TrainConfig(data="fashion-mnist", download=False, train_subset=10))
        assert len(data.train) == 10

    def test_missing_names_all_three_sources(
        self, tmp_path: Path, no_system_fashion: Path, cli: Callable[..., object]
    ) -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        result = cli(
            "train", "--data-dir", str(empty), "--no-download", "--out", str(tmp_path / "run")
        )
        assert result.code == 2  # type: ignore[attr-defined]
        err = result.err  # type: ignore[attr-defined]
        assert err.startswith("batchmix: error: Fashion-MNIST not found")
        assert (
            str(empty) in err and str(no_system_fashion) in err and "dataset-fashion-mnist" in err
        )
        assert "torchvision download" in err
        assert not (tmp_path / "run").exists()

    def test_failed_download_is_reported(
        self, tmp_path: Path, no_system_fashion: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import torchvision.datasets

        def offline(*args: object, **kwargs: object) -> None:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

        monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
        with pytest.raises(
            AppError,
            match=r"(?s)Debian package.*torchvision download into .* failed \(RuntimeError: Error downloading",
        ):
            load_data(TrainConfig(data="fashion-mnist", data_dir=str(tmp_path)))

    def test_localisation_canvas_and_boxes(self, fashion_dir: Path) -> None:
        data = load_data(
            TrainConfig(data="fashion-mnist-loc", data_dir=str(fashion_dir), image_size=48)
        )
        assert data.image_size == 48 and data.test_boxes is not None
        assert data.test_boxes.shape == (64, 4)
        for index in range(len(data.test)):
            canvas = data.test.raw(index)[0]
            x1, y1, x2, y2 = (int(v) for v in data.test_boxes[index])
            ys, xs = torch.nonzero(canvas, as_tuple=True)
            # The box is the tight box of the item's pixels on the canvas.
            assert (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) == (
                x1,
                y1,
                x2,
                y2,
            )

    def test_subsets_are_fixed(self, fashion_dir: Path) -> None:
        config = TrainConfig(
            data="fashion-mnist", data_dir=str(fashion_dir), train_subset=50, seed=1
        )
        first, second = (
            load_data(config),
            load_data(
                TrainConfig(**{**config.to_dict(), "seed": 7, "mix_weights": config.mix_weights})
            ),
        )
        assert torch.equal(first.train.images, second.train.images)
        assert len(first.train) == 50


def _write_png(path: Path, colour: tuple[int, int, int], size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size + 4), colour).save(path)


def _write_truncated_jpeg(path: Path) -> None:
    """A JPEG cut in half: Pillow opens and verifies it, and fails to decode it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


class TestImageFolder:
    def make(self, root: Path) -> None:
        for index in range(4):
            _write_png(root / "red" / f"{index}.png", (200 + index, 0, 0))
            _write_png(root / "blue" / f"{index}.png", (0, 0, 200 + index))

    def test_reads_classes_and_splits(self, tmp_path: Path) -> None:
        self.make(tmp_path)
        (tmp_path / "red" / ".DS_Store").write_bytes(b"\0")  # hidden files are not images
        data = load_data(TrainConfig(data="imagefolder", data_dir=str(tmp_path), image_size=16))
        assert data.classes == ("blue", "red") and data.channels == 3 and data.image_size == 16
        assert len(data.train) + len(data.test) == 8

    def test_train_and_test_subfolders(self, tmp_path: Path) -> None:
        self.make(tmp_path / "train")
        self.make(tmp_path / "val")
        data = load_data(TrainConfig(data="imagefolder", data_dir=str(tmp_path), image_size=16))
        assert (len(data.train), len(data.test)) == (8, 8)

    def test_bad_file_stops_and_is_named(self, tmp_path: Path, cli: Callable[..., object]) -> None:
        self.make(tmp_path / "images")
        (tmp_path / "images" / "red" / "notes.txt").write_text("not an image")
        (tmp_path / "images" / "blue" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
        result = cli(
            "train",
            "--data",
            "imagefolder",
            "--data-dir",
            str(tmp_path / "images"),
            "--out",
            str(tmp_path / "run"),
        )
        assert result.code == 2  # type: ignore[attr-defined]
        err = result.err  # type: ignore[attr-defined]
        assert (
            "2 file(s)" in err
            and "notes.txt" in err
            and "broken.png" in err
            and "--skip-bad-images" in err
        )
        assert not (tmp_path / "run").exists()

    def test_skip_bad_images_warns(self, tmp_path: Path) -> None:
        self.make(tmp_path)
        (tmp_path / "red" / "notes.txt").write_text("not an image")
        config = TrainConfig(
            data="imagefolder", data_dir=str(tmp_path), image_size=16, skip_bad_images=True
        )
        with pytest.warns(SkippedFilesWarning, match="notes.txt"):
            data = load_data(config)
        assert len(data.train) + len(data.test) == 8

    def test_lazy_images_give_the_same_items(self, tmp_path: Path) -> None:
        self.make(tmp_path)
        values = dict(data="imagefolder", data_dir=str(tmp_path), image_size=12, train_subset=5)
        eager = load_data(TrainConfig(**values))
        lazy = load_data(TrainConfig(**values, lazy_images=True))
        assert isinstance(lazy.train.images, app_data.ImageFiles)
        assert isinstance(eager.train.images, torch.Tensor)
        assert lazy.train.images.shape == (5, 3, 12, 12) and len(lazy.test) == len(eager.test)
        # Indexed as the tensor it stands for: ints, 0-d tensors, index tensors, masks.
        files, pixels = lazy.train.images, eager.train.images
        assert torch.equal(files[torch.tensor(3)], pixels[3])
        for index in (torch.tensor([4, 0]), torch.tensor([True, False, False, True, False])):
            chosen = files[index]
            assert isinstance(chosen, app_data.ImageFiles)
            assert torch.stack([chosen[i] for i in range(len(chosen))]).equal(pixels[index])
        for split in ("train", "test"):
            a, b = getattr(eager, split), getattr(lazy, split)
            assert torch.equal(a.labels, b.labels) and torch.equal(a.mean, b.mean)
            for i in range(len(a)):
                assert torch.equal(a.raw(i), b.raw(i))
                torch.manual_seed(i)  # the same augmentation draws
                first = a[i]
                torch.manual_seed(i)
                assert torch.equal(first[0], b[i][0]) and first[1] == b[i][1]

    def test_lazy_images_check_headers_at_the_start(self, tmp_path: Path) -> None:
        self.make(tmp_path)
        (tmp_path / "red" / "notes.txt").write_text("not an image")
        values = dict(data="imagefolder", data_dir=str(tmp_path), image_size=12, lazy_images=True)
        with pytest.raises(AppError, match=r"(?s)1 file\(s\) .*/notes\.txt"):
            load_data(TrainConfig(**values))
        with pytest.warns(SkippedFilesWarning, match="notes.txt"):
            data = load_data(TrainConfig(**values, skip_bad_images=True))
        assert len(data.train) + len(data.test) == 8

    def test_lazy_images_name_a_file_damaged_past_its_header(self, tmp_path: Path) -> None:
        from torch.utils.data import DataLoader

        from batchmix.app.errors import app_message

        path = tmp_path / "cut.jpg"
        _write_truncated_jpeg(path)
        files = app_data.ImageFiles([path], 16)
        dataset = app_data.ImageDataset(
            files, torch.zeros(1, dtype=torch.long), mean=(0.0,) * 3, std=(1.0,) * 3
        )
        expected = f"{path} could not be decoded (OSError"
        with pytest.raises(AppError, match="checked when the data are loaded, but not") as info:
            dataset[0]
        assert str(info.value).startswith(expected)
        # Raised in a DataLoader worker, the error comes back wrapped in the worker's
        # traceback; the command line prints the original message.
        with pytest.raises(AppError, match="Caught AppError in DataLoader worker") as info:
            next(iter(DataLoader(dataset, num_workers=1)))
        message = app_message(info.value)
        assert message.startswith(expected) and message.endswith("changes the data set).")
        assert "Traceback" not in message

    def test_lazy_images_decode_the_first_images_at_the_start(self, tmp_path: Path) -> None:
        # A file that passes the header check but does not decode, among the images the
        # normalisation statistics are computed from: refused, or left out with the option.
        self.make(tmp_path / "train")
        self.make(tmp_path / "test")
        cut = tmp_path / "train" / "blue" / "2.jpg"
        _write_truncated_jpeg(cut)
        values = dict(data="imagefolder", data_dir=str(tmp_path), image_size=12, lazy_images=True)
        with pytest.raises(AppError, match=r"(?s)1 file\(s\) among the training images .*2\.jpg"):
            load_data(TrainConfig(**values))
        with pytest.warns(SkippedFilesWarning, match=r"among the training images .*2\.jpg"):
            data = load_data(TrainConfig(**values, skip_bad_images=True))
        assert len(data.train) == 8 and cut not in data.train.images.paths  # type: ignore[union-attr]
        with pytest.warns(SkippedFilesWarning, match=r"2\.jpg"):
            eager = load_data(TrainConfig(**{**values, "lazy_images": False}, skip_bad_images=True))
        assert torch.equal(data.train.mean, eager.train.mean)  # same images, same statistics
        assert torch.equal(data.train.labels, eager.train.labels)

    def test_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(AppError, match="is not a folder"):
            load_data(TrainConfig(data="imagefolder", data_dir=str(tmp_path / "nowhere")))


def test_digits_are_offline_and_small() -> None:
    data = load_data(TrainConfig(data="digits", image_size=12))
    assert data.image_size == 12 and data.channels == 1 and data.num_classes == 10
    assert len(data.train) + len(data.test) == 1797
    assert not data.train.flip  # a mirrored digit is not the same digit


def test_augmentation_draws_from_torch_rng() -> None:
    data = load_data(TrainConfig(data="digits"))
    torch.manual_seed(3)
    first = data.train[0][0]
    torch.manual_seed(3)
    assert torch.equal(first, data.train[0][0])
    assert torch.equal(data.test[0][0], data.test[0][0])


class TestCifar:
    def test_offline_without_files_says_so(
        self, tmp_path: Path, cli: Callable[..., object]
    ) -> None:
        result = cli(
            "train",
            "--data",
            "cifar10",
            "--data-dir",
            str(tmp_path),
            "--no-download",
            "--out",
            str(tmp_path / "run"),
        )
        assert result.code == 2  # type: ignore[attr-defined]
        assert f"cifar10 not found in {tmp_path}" in result.err  # type: ignore[attr-defined]

    def test_failed_download_is_reported(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import torchvision.datasets

        class Offline:
            def __init__(self, root: str, train: bool, download: bool) -> None:
                raise RuntimeError("Dataset not found." if not download else "urlopen error")

        monkeypatch.setattr(torchvision.datasets, "CIFAR100", Offline)
        with pytest.raises(
            AppError,
            match=r"cifar100 not found in .* download failed \(RuntimeError: urlopen error\)",
        ):
            load_data(TrainConfig(data="cifar100", data_dir=str(tmp_path)))


def test_train_on_an_image_folder_with_resnet18(tmp_path: Path, cli: Callable[..., object]) -> None:
    for index in range(6):
        _write_png(tmp_path / "images" / "red" / f"{index}.png", (180 + 10 * index, 20, 20))
        _write_png(tmp_path / "images" / "blue" / f"{index}.png", (20, 20, 180 + 10 * index))
    result = cli(
        "train", "--data", "imagefolder", "--data-dir", str(tmp_path / "images"), "--image-size", "16",
        "--model", "resnet18", "--method", "cutmix", "--epochs", "1", "--batch-size", "4",
        "--no-progress", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    assert cli("evaluate", str(tmp_path / "run")).code == 0  # type: ignore[attr-defined]


def test_a_data_dir_without_the_files_warns_which_copy_is_read(
    fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_data, "SYSTEM_FASHION_MNIST", fashion_dir)
    empty = tmp_path / "typo"
    with pytest.warns(
        UserWarning,
        match=rf"--data-dir {empty} holds no Fashion-MNIST idx files; reading them from {fashion_dir} instead",
    ):
        data = load_data(TrainConfig(data="fashion-mnist", data_dir=str(empty)))
    assert data.num_classes == 10

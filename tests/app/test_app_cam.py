"""CAM: shapes, the identity with the logits, boxes from hand-made maps, IoU, localisation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from app_helpers import TINY
from torch import Tensor, nn
from torch.nn import functional as F

from batchmix.app import report
from batchmix.app.cam import box_iou, cam_boxes, class_activation_maps, localisation, normalise_maps
from batchmix.app.config import TrainConfig
from batchmix.app.data import ImageDataset, load_data
from batchmix.app.errors import AppError
from batchmix.app.models import CamClassifier, SmallResNet, TorchvisionResNet
from batchmix.app.report import run_cam


class TestMaps:
    @pytest.mark.parametrize(
        ("model", "feature_side"),
        [(SmallResNet(1, 10, width=8), 7), (TorchvisionResNet("resnet18", 1, 10, 28), 4)],
        ids=["small-resnet", "resnet18"],
    )
    def test_shapes_and_identity_with_logits(self, model: CamClassifier, feature_side: int) -> None:
        model.eval()
        images = torch.randn(3, 1, 28, 28)
        classes = torch.tensor([0, 4, 9])
        maps, logits = class_activation_maps(model, images, classes)
        assert maps.shape == (3, feature_side, feature_side)
        assert torch.allclose(logits, model(images), atol=1e-5)
        # The spatial mean of class c's map plus its bias is the logit of c.
        expected = logits[torch.arange(3), classes] - model.fc.bias[classes]
        assert torch.allclose(maps.mean(dim=(1, 2)), expected, atol=1e-5)

    def test_default_class_is_the_prediction(self) -> None:
        model = SmallResNet(3, 5, width=4).eval()
        images = torch.randn(2, 3, 16, 16)
        maps, logits = class_activation_maps(model, images)
        chosen, _ = class_activation_maps(model, images, logits.argmax(dim=1))
        assert torch.equal(maps, chosen)

    def test_normalise_upsamples_to_unit_range(self) -> None:
        scaled = normalise_maps(torch.randn(4, 7, 7) * 5, (28, 28))
        assert scaled.shape == (4, 28, 28)
        assert torch.allclose(scaled.amin(dim=(1, 2)), torch.zeros(4))
        assert torch.allclose(scaled.amax(dim=(1, 2)), torch.ones(4))


class TestBoxes:
    def test_box_around_a_blob(self) -> None:
        maps = torch.zeros(1, 10, 12)
        maps[0, 2:5, 3:9] = 1.0
        assert cam_boxes(maps).tolist() == [[3, 2, 9, 5]]

    def test_largest_region_wins(self) -> None:
        maps = torch.zeros(1, 10, 10)
        maps[0, 0:2, 0:2] = 1.0  # small, strongest
        maps[0, 5:9, 4:10] = 0.6  # large
        assert cam_boxes(maps, threshold=0.5).tolist() == [[4, 5, 10, 9]]
        # A higher threshold drops the weaker region.
        assert cam_boxes(maps, threshold=0.8).tolist() == [[0, 0, 2, 2]]

    def test_diagonal_pixels_are_connected(self) -> None:
        maps = torch.zeros(1, 5, 5)
        maps[0, 1, 1] = maps[0, 2, 2] = maps[0, 3, 3] = 1.0
        assert cam_boxes(maps).tolist() == [[1, 1, 4, 4]]

    def test_flat_map_gives_the_whole_image(self) -> None:
        assert cam_boxes(torch.zeros(1, 6, 8)).tolist() == [[0, 0, 8, 6]]

    def test_bad_threshold(self) -> None:
        with pytest.raises(
            AppError, match=r"--threshold: expected a fraction in \(0, 1\], got 1.5"
        ):
            cam_boxes(torch.zeros(1, 4, 4), threshold=1.5)


class TestIoU:
    @pytest.mark.parametrize(
        ("first", "second", "expected"),
        [
            ([0, 0, 4, 4], [0, 0, 4, 4], 1.0),
            ([0, 0, 4, 4], [4, 4, 8, 8], 0.0),  # touching corners share no pixel
            ([0, 0, 4, 4], [2, 0, 6, 4], 8 / 24),
            ([0, 0, 4, 4], [1, 1, 3, 3], 4 / 16),
            ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
        ],
        ids=["same", "disjoint", "half-shift", "inside", "empty"],
    )
    def test_values(self, first: list[int], second: list[int], expected: float) -> None:
        value = box_iou(torch.tensor([first]), torch.tensor([second]))
        assert value.tolist() == pytest.approx([expected])
        assert box_iou(torch.tensor([second]), torch.tensor([first])).tolist() == pytest.approx(
            [expected]
        )

    def test_shape_mismatch(self) -> None:
        with pytest.raises(AppError, match=r"expected two \(B, 4\) box tensors"):
            box_iou(torch.zeros(2, 4), torch.zeros(3, 4))


class PixelCam(CamClassifier):
    """A stand-in 'model' whose only feature map is the image: its CAM is the object itself."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 10)
        with torch.no_grad():
            self.fc.weight.fill_(1.0)
            self.fc.bias.zero_()

    def features(self, x: Tensor) -> Tensor:
        return x - x.amin(dim=(2, 3), keepdim=True)


class SignedPixelCam(CamClassifier):
    """The image as its only feature; class 0 weighs it +1, class 1 −1, and class 1's bias wins
    every prediction. Class 0's map is the object, class 1's its negative."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, 100.0]))

    def features(self, x: Tensor) -> Tensor:
        return x


class PooledPixelCam(SignedPixelCam):
    """The same on 4×4 average-pooled images: maps at a quarter of the image's side."""

    def features(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 4)


def _squares(boxes: list[list[int]], labels: list[int], side: int = 24) -> ImageDataset:
    images = torch.zeros(len(boxes), 1, side, side, dtype=torch.uint8)
    for image, (x1, y1, x2, y2) in zip(images, boxes, strict=True):
        image[:, y1:y2, x1:x2] = 255
    return ImageDataset(images, torch.tensor(labels), mean=(0.0,), std=(1.0,))


def test_localisation_maps_the_true_class_and_top1_needs_the_prediction() -> None:
    # Class-0 images: the true class's map is the object (found), but class 1 is predicted.
    # Class-1 images: predicted right, but their map is the negated object (the box misses).
    boxes = [[2, 3, 9, 8], [12, 10, 20, 22], [5, 14, 11, 23], [0, 0, 6, 6]]
    data = _squares(boxes, [0, 1, 0, 1])
    result = localisation(SignedPixelCam(), data, torch.tensor(boxes), torch.device("cpu"))
    assert result["gt_known_loc"] == 50.0  # the predicted class's map would find none
    assert result["top1_loc"] == 0.0  # every box found belongs to a wrong prediction
    ious = box_iou(
        cam_boxes(normalise_maps(data.images[[0, 2]].float()[:, 0], (24, 24))),
        torch.tensor([boxes[0], boxes[2]]),
    )
    assert ious.tolist() == [1.0, 1.0]


def test_maps_are_upsampled_bilinearly_with_pixel_centres_aligned() -> None:
    # The object covers feature cells 2 and 3 (pixels 8–15) of a 6×6 map of a 24×24 image.
    # Bilinear upsampling with align_corners=False puts pixel p at cell (p + 0.5)/4 − 0.5,
    # which is within 0.8 cells of the object (20% of the peak) for p = 7 … 16.
    data = _squares([[8, 8, 16, 16]], [0])
    images = torch.stack([data[0][0]])
    maps, _ = class_activation_maps(PooledPixelCam(), images, torch.tensor([0]))
    assert maps.shape == (1, 6, 6)
    assert cam_boxes(normalise_maps(maps, (24, 24)), 0.2).tolist() == [[7, 7, 17, 17]]


def test_localisation_of_a_perfect_map(fashion_dir: Path) -> None:
    data = load_data(
        TrainConfig(data="fashion-mnist-loc", data_dir=str(fashion_dir), image_size=40)
    )
    assert data.test_boxes is not None
    result = localisation(
        PixelCam(), data.test, data.test_boxes, torch.device("cpu"), threshold=0.05
    )
    assert result["gt_known_loc"] == 100.0 and result["mean_iou"] == pytest.approx(1.0)
    assert result["images"] == len(data.test)
    shifted = data.test_boxes + torch.tensor([20, 20, 20, 20])  # boxes elsewhere: nothing localised
    assert localisation(PixelCam(), data.test, shifted, torch.device("cpu"))["gt_known_loc"] == 0.0


def test_cam_command_on_the_localisation_data(
    fashion_dir: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    run = tmp_path / "run"
    args = ["--data", "fashion-mnist-loc", "--data-dir", str(fashion_dir), "--image-size", "32"]
    assert (
        cli(
            "train",
            *args,
            "--width",
            "8",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--no-progress",
            "--out",
            str(run),
        ).code
        == 0
    )
    result = cli("cam", str(run), "--images", "0,1,2")
    assert result.code == 0, result.err
    assert "Localisation on 64 test images: GT-known" in result.out
    assert (run / "cam" / "cam.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((run / "cam" / "cam.json").read_text())
    assert record["images"] == [0, 1, 2] and len(record["predicted_boxes"]) == 3
    assert 0 <= record["localisation"]["gt_known_loc"] <= 100
    again = cli("cam", str(run), "--images", "0")
    assert again.code == 2 and "pass --overwrite" in again.err
    bad = cli("cam", str(run), "--images", "0,999", "--overwrite")
    assert bad.code == 2 and "expected test indices in [0, 64)" in bad.err


def test_compare_reports_both_localisation_accuracies(
    fashion_dir: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    out = tmp_path / "cmp"
    args = ["--data", "fashion-mnist-loc", "--data-dir", fashion_dir, "--image-size", "32"]
    args += ["--width", "4", "--epochs", "1", "--batch-size", "64", "--no-progress"]
    result = cli("compare", *args, "--methods", "none,cutmix", "--seeds", "2", "--out", out)
    assert result.code == 0, result.err
    results = json.loads((out / "results.json").read_text())
    assert results["threshold"] == 0.2
    for method, entry in results["summary"].items():
        runs = [r["localisation"] for r in results["runs"] if r["method"] == method]
        for key in ("top1_loc", "gt_known_loc", "mean_iou"):
            assert entry[key] == pytest.approx(sum(r[key] for r in runs) / 2)
            assert f"{key}_std" in entry
        assert entry["top1_loc"] <= entry["gt_known_loc"]
    report_text = (out / "report" / "report.md").read_text()
    assert "| Method | Top-1 error | Top-5 error | Top-1 loc. (%) | GT-known loc. (%) |" in (
        report_text
    )
    rows = [line for line in report_text.splitlines() if line.startswith(("| Base", "| **Base"))]
    assert len(rows) == 1 and rows[0].count(" ± ") == 4
    assert "at or above 20% of its peak" in report_text


def test_cam_threshold_is_checked_before_the_model_loads(
    tiny_run: Path, cli: Callable[..., Any]
) -> None:
    for bad in ("0", "1.5", "x"):
        result = cli("cam", str(tiny_run), "--threshold", bad)
        assert result.code == 2 and "argument --threshold: expected a" in result.err
    assert not (tiny_run / "cam").exists()


def test_a_fresh_start_removes_the_maps_of_the_old_model(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    run = tmp_path / "run"
    small = ["--epochs", "1", "--train-subset", "64", "--test-subset", "32", "--out", str(run)]
    assert cli("train", *TINY, *small).code == 0
    assert cli("cam", str(run), "--images", "0").code == 0
    (run / "cam" / "notes.txt").write_text("mine")
    assert cli("train", *TINY, *small, "--overwrite").code == 0
    assert sorted(p.name for p in (run / "cam").iterdir()) == ["notes.txt"]
    assert cli("cam", str(run), "--images", "0").code == 0
    (run / "cam" / "notes.txt").unlink()
    assert cli("train", *TINY, *small, "--overwrite").code == 0
    assert not (run / "cam").exists()
    # Only a run being replaced takes its maps along: a plain start in a folder without a
    # run keeps them.
    other = tmp_path / "other"
    (other / "cam").mkdir(parents=True)
    (other / "cam" / "cam.png").write_bytes(b"not mine to remove")
    small[-1] = str(other)
    assert cli("train", *TINY, *small).code == 0
    assert (other / "cam" / "cam.png").read_bytes() == b"not mine to remove"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch digits run (about a second)."""
    from batchmix.app.cli import main

    run = tmp_path_factory.mktemp("cam") / "run"
    small = ["--epochs", "1", "--train-subset", "64", "--test-subset", "32"]
    assert main(["train", *TINY, *small, "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("images", ["", ",", " , "], ids=["empty", "comma", "blank"])
def test_no_image_indices_is_an_error(images: str, tiny_run: Path, cli: Callable[..., Any]) -> None:
    result = cli("cam", str(tiny_run), "--images", images)
    assert result.code == 2
    assert f"--images: expected comma-separated indices such as 0,5,9, got {images!r}" in result.err
    assert not (tiny_run / "cam").exists()


def test_run_cam_refuses_an_empty_index_list(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(AppError, match="--images: expected at least one test index"):
        run_cam(
            str(tiny_run),
            tmp_path / "cam",
            indices=[],
            count=8,
            threshold=0.2,
            loc_limit=None,
            data_dir=None,
            download=False,
            overwrite=False,
        )
    assert not (tmp_path / "cam").exists()


@pytest.mark.parametrize("target", ["taken", "taken/sub"], ids=["a-file", "under-a-file"])
def test_unwritable_out_is_refused_before_the_work(
    target: str,
    tiny_run: Path,
    tmp_path: Path,
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(report, "load_trained", no_work)
    (tmp_path / "taken").write_text("")
    result = cli("cam", str(tiny_run), "--out", str(tmp_path / target))
    assert result.code == 2
    assert (
        f"batchmix: error: cannot write the CAM files to {tmp_path / target}: expected a folder, "
        f"but {tmp_path / 'taken'} is a file." in result.err
    )

"""``compare``, ``show`` and the demo's preset: the report files exist and parse."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from app_helpers import TINY
from PIL import Image

from batchmix.app.cli import DEMO, build_parser

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from batchmix.app.cli import main

    out = tmp_path_factory.mktemp("compare") / "cmp"
    code = main(
        [
            "compare",
            *TINY,
            "--methods",
            "none,cutmix,cutout",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--cam-images",
            "4",
        ]
    )
    assert code == 0
    return out


class TestCompare:
    def test_results_json(self, comparison: Path) -> None:
        results = json.loads((comparison / "results.json").read_text())
        assert results["methods"] == ["none", "cutmix", "cutout"] and results["seeds"] == [0, 1]
        assert len(results["runs"]) == 6
        for method, entry in results["summary"].items():
            errors = [r["final"]["test_error"] for r in results["runs"] if r["method"] == method]
            assert entry["seeds"] == 2
            assert entry["test_error_mean"] == pytest.approx(sum(errors) / 2)
            assert entry["test_error_std"] == pytest.approx(abs(errors[0] - errors[1]) / 2**0.5)
        assert all(len(run["history"]) == 2 for run in results["runs"])
        assert results["environment"]["cpu_count"] >= 1

    def test_report_markdown(self, comparison: Path) -> None:
        report = (comparison / "report" / "report.md").read_text()
        assert "| Method | Top-1 error |" in report
        rows = [
            line for line in report.splitlines() if line.startswith("| ") and "Method" not in line
        ]
        assert len(rows) == 3
        for row, title in zip(rows, ("Baseline", "CutMix", "CutOut"), strict=True):
            assert row.startswith((f"| {title} |", f"| **{title}** |"))
            assert row.count(" ± ") == 2  # top-1 and top-5, even when a spread is zero
        for image in ("curves.png", "mixed_grid.png", "cam.png"):
            assert f"]({image})" in report

    @pytest.mark.parametrize("name", ["curves.png", "mixed_grid.png", "cam.png"])
    def test_figures_are_images(self, comparison: Path, name: str) -> None:
        path = comparison / "report" / name
        assert path.read_bytes()[:8] == PNG
        with Image.open(path) as image:
            assert image.size[0] > 200 and image.size[1] > 200

    def test_runs_are_evaluable(self, comparison: Path, cli: Callable[..., Any]) -> None:
        result = cli("evaluate", str(comparison / "runs" / "cutmix-seed1"))
        assert result.code == 0 and "top-1" in result.out

    def test_refuses_to_overwrite(self, comparison: Path, cli: Callable[..., Any]) -> None:
        before = (comparison / "results.json").read_bytes()
        result = cli(
            "compare", *TINY, "--methods", "none", "--seeds", "1", "--out", str(comparison)
        )
        assert result.code == 2 and "already holds a comparison" in result.err
        assert (comparison / "results.json").read_bytes() == before

    def test_resume_reuses_finished_runs(self, comparison: Path, cli: Callable[..., Any]) -> None:
        checkpoint = comparison / "runs" / "none-seed0" / "checkpoint.pt"
        before = checkpoint.read_bytes()
        args = [
            "--methods",
            "none,cutmix,cutout",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--cam-images",
            "4",
        ]
        result = cli("compare", *TINY, *args, "--out", str(comparison), "--resume")
        assert result.code == 0, result.err
        assert checkpoint.read_bytes() == before


SMALL_COMPARISON = (
    *TINY,
    "--seeds",
    "1",
    "--epochs",
    "1",
    "--train-subset",
    "128",
    "--test-subset",
    "64",
    "--cam-images",
    "2",
)


def _time_column(report: str) -> list[str]:
    return [line.rsplit("|", 2)[1] for line in report.splitlines() if line.endswith(" s |")]


class TestRerun:
    """``--resume`` and ``--overwrite`` on a finished comparison."""

    def test_resume_keeps_the_wall_times_of_finished_runs(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        out = tmp_path / "cmp"
        args = ["compare", *SMALL_COMPARISON, "--methods", "none,cutmix", "--out", str(out)]
        assert cli(*args).code == 0
        before = json.loads((out / "results.json").read_text())
        report = (out / "report" / "report.md").read_text()
        again = cli(*args, "--resume")
        assert again.code == 0, again.err
        after = json.loads((out / "results.json").read_text())
        assert [r["wall_s"] for r in after["runs"]] == [r["wall_s"] for r in before["runs"]]
        for method in ("none", "cutmix"):
            assert (
                after["summary"][method]["wall_s_mean"] == before["summary"][method]["wall_s_mean"]
            )
        assert after["wall_s"] >= sum(r["wall_s"] for r in before["runs"])
        assert _time_column((out / "report" / "report.md").read_text()) == _time_column(report)

    def test_overwrite_removes_what_the_new_comparison_does_not_write(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        out = tmp_path / "cmp"
        first = ["--methods", "none,cutmix", "--photos"]
        assert cli("compare", *SMALL_COMPARISON, *first, "--out", str(out)).code == 0
        assert (out / "report" / "photos_grid.png").exists()
        # Things the comparison does not own stay: a note, a folder not named like a run, and a
        # run-like link to a folder outside the comparison.
        (out / "report" / "notes.txt").write_text("mine")
        (out / "runs" / "scratch").mkdir()
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        (outside / "config.json").write_text("{}")
        (out / "runs" / "mixup-seed0").symlink_to(outside, target_is_directory=True)

        result = cli(
            "compare", *SMALL_COMPARISON, "--methods", "none", "--out", str(out), "--overwrite"
        )
        assert result.code == 0, result.err
        assert sorted(p.name for p in (out / "runs").iterdir()) == [
            "mixup-seed0",
            "none-seed0",
            "scratch",
        ]
        assert (outside / "config.json").read_text() == "{}"
        assert sorted(p.name for p in (out / "report").iterdir()) == [
            "cam.png",
            "curves.png",
            "mixed_grid.png",
            "notes.txt",
            "report.md",
        ]
        report = (out / "report" / "report.md").read_text()
        assert "photos_grid.png" not in report and "CutMix |" not in report
        assert json.loads((out / "results.json").read_text())["methods"] == ["none"]

    def test_overwrite_refuses_to_remove_a_run_in_use(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        import fcntl

        from batchmix.app.train import LOCK_NAME

        out = tmp_path / "cmp"
        assert cli("compare", *SMALL_COMPARISON, "--methods", "none,cutmix", "--out", out).code == 0
        before = {p.name: p.read_bytes() for p in (out / "runs" / "cutmix-seed0").iterdir()}
        with open(out / "runs" / "cutmix-seed0" / LOCK_NAME, "r+") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a process still writing it
            result = cli(
                "compare", *SMALL_COMPARISON, "--methods", "none", "--out", out, "--overwrite"
            )
        assert result.code == 2 and "is in use by another batchmix process" in result.err
        after = {p.name: p.read_bytes() for p in (out / "runs" / "cutmix-seed0").iterdir()}
        assert after == before


class TestShow:
    def test_bundled_photos(self, tmp_path: Path, cli: Callable[..., Any]) -> None:
        result = cli("show", "--out", str(tmp_path), "--size", "64")
        assert result.code == 0
        assert (tmp_path / "mixed_grid.png").read_bytes()[:8] == PNG
        assert cli("show", "--out", str(tmp_path), "--size", "64").code == 2

    def test_user_folder(self, tmp_path: Path, cli: Callable[..., Any]) -> None:
        photos = tmp_path / "photos"
        photos.mkdir()
        for index, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            Image.new("RGB", (50, 40), colour).save(photos / f"p{index}.png")
        assert (
            cli(
                "show", "--images", str(photos), "--out", str(tmp_path / "out"), "--size", "32"
            ).code
            == 0
        )
        (photos / "p3.jpg").write_text("no picture here")
        result = cli(
            "show", "--images", str(photos), "--out", str(tmp_path / "bad"), "--count", "5"
        )
        assert result.code == 2 and "p3.jpg is not a readable image" in result.err
        assert not (tmp_path / "bad").exists()


def test_demo_preset_is_the_documented_one() -> None:
    args = build_parser().parse_args(["demo"])
    assert (args.epochs, args.seeds, args.train_subset) == (
        DEMO["epochs"],
        DEMO["seeds"],
        DEMO["train_subset"],
    )
    assert args.out == "out/demo"


@pytest.mark.slow
def test_demo_command_end_to_end(
    fashion_dir: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    out = tmp_path / "demo"
    args = [
        "demo",
        "--data-dir",
        str(fashion_dir),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--train-subset",
        "256",  # the whole fake split: a larger subset is named in a warning
        "--test-subset",
        "64",
        "--no-progress",
    ]
    result = cli(*args)
    assert result.code == 0, result.err
    assert f"Report: {out / 'report' / 'report.md'}" in result.out
    for name in ("report.md", "curves.png", "mixed_grid.png", "photos_grid.png", "cam.png"):
        assert (out / "report" / name).exists()
    again = cli(*args, "--resume")  # a second `make demo` re-reports without retraining
    assert again.code == 0

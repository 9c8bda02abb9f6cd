"""The command line: every command's help, usage errors, the module entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from app_helpers import TINY

COMMANDS = {
    "train": [
        "--method",
        "--mix-weights",
        "--mix-off-epoch",
        "--resume",
        "--overwrite",
        "--workers",
    ],
    "evaluate": ["checkpoint", "--data-dir", "--json"],
    "compare": ["--methods", "--seeds", "--out", "--train-subset"],
    "cam": ["checkpoint", "--images", "--threshold", "--loc-limit"],
    "show": ["--images", "--size", "--out"],
    "demo": ["--out", "--resume", "--overwrite", "--seeds"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command(command: str, cli: Callable[..., object]) -> None:
    result = cli(command, "--help")
    assert result.code == 0  # type: ignore[attr-defined]
    for option in COMMANDS[command]:
        assert option in result.out  # type: ignore[attr-defined]


def test_top_level_help_lists_commands(cli: Callable[..., object]) -> None:
    result = cli("--help")
    assert result.code == 0  # type: ignore[attr-defined]
    for command in COMMANDS:
        assert command in result.out  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--method", "blend"], "invalid choice: 'blend'"),
        (["train", "--model", "vgg16"], "invalid choice: 'vgg16'"),
        (["compare", "--methods", "none,blend"], "unknown method 'blend'"),
        (
            ["train", "--method", "mix", "--mix-weights", "mixup=0.5,blend=1"],
            "unknown method in --mix-weights 'blend'",
        ),
        (["train", "--method", "mix", "--mix-weights", "mixup"], "expected METHOD=WEIGHT"),
        (["train", "--mix-prob", "1.5"], "--mix-prob: expected a probability"),
        (["train", "--data", "imagefolder"], "needs --data-dir"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
    ids=[
        "method",
        "model",
        "compare-method",
        "mix-weights-name",
        "mix-weights-form",
        "mix-prob",
        "imagefolder-dir",
        "command",
    ],
)
def test_bad_names_exit_2_with_a_message(
    args: list[str], message: str, cli: Callable[..., object], tmp_path: object
) -> None:
    result = cli(*args, "--out", str(tmp_path)) if args[0] != "nonsense" else cli(*args)
    assert result.code == 2  # type: ignore[attr-defined]
    assert message in result.err  # type: ignore[attr-defined]


def test_python_dash_m_batchmix() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batchmix", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert "compare" in result.stdout


def test_every_method_has_a_report_title() -> None:
    from batchmix.app.config import METHODS
    from batchmix.app.report import METHOD_TITLES

    assert set(METHODS) == set(METHOD_TITLES)


SMALL = ("--epochs", "1", "--train-subset", "64", "--test-subset", "32")


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (["train", *TINY, *SMALL], "taken/sub"),
        (["compare", *TINY, *SMALL, "--methods", "none", "--seeds", "1"], "taken/sub"),
        (["show", "--size", "32"], "taken"),
        (["show", "--size", "32"], "taken/sub"),
    ],
    ids=["train-under-a-file", "compare-under-a-file", "show-onto-a-file", "show-under-a-file"],
)
def test_unwritable_output_is_an_error_not_a_traceback(
    command: list[str], target: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "taken").write_text("a file where a folder would go")
    result = cli(*command, "--out", str(tmp_path / target))
    assert result.code == 2, result.err
    assert result.err.startswith("batchmix: error: ") and "Traceback" not in result.err
    assert str(tmp_path / "taken") in result.err
    assert (tmp_path / "taken").read_text() == "a file where a folder would go"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    "command",
    [
        ["show", "--size", "32"],
        ["compare", *TINY, *SMALL, "--methods", "none", "--seeds", "1"],
        ["train", *TINY, "--epochs", "1"],
    ],
    ids=["show", "compare", "train"],
)
def test_folder_nobody_may_write_is_an_error(command: list[str], cli: Callable[..., Any]) -> None:
    # /proc takes no new files, not even from root (where a read-only mode does not stop it).
    result = cli(*command, "--out", "/proc/batchmix-test/out")
    assert result.code == 2, result.err
    assert result.err.startswith("batchmix: error: ") and "/proc" in result.err
    assert "Traceback" not in result.err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to read-only folders"
)
@pytest.mark.parametrize(
    "command",
    [["show", "--size", "32"], ["compare", *TINY, *SMALL, "--methods", "none", "--seeds", "1"]],
    ids=["show", "compare"],
)
def test_read_only_folder_is_an_error(
    command: list[str], cli: Callable[..., Any], tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = cli(*command, "--out", str(locked / "out"))
    finally:
        locked.chmod(0o700)
    assert result.code == 2 and result.err.startswith("batchmix: error: ")
    assert str(locked) in result.err and not any(locked.iterdir())


@pytest.mark.parametrize("command", ["compare", "demo", "evaluate", "cam", "show"])
def test_only_train_runs_under_torchrun(
    command: str, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = {"evaluate": [tmp_path], "cam": [tmp_path]}.get(command, ["--out", tmp_path / "o"])
    result = cli(command, *args)
    assert result.code == 2
    assert f"{command} runs in one process, but torchrun started 2" in result.err
    assert not (tmp_path / "o").exists()


def test_version(cli: Callable[..., Any]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        from batchmix.app.cli import build_parser

        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"batchmix {version('batchmix')}"


def test_show_skips_files_that_are_not_images(cli: Callable[..., Any], tmp_path: Path) -> None:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "00_notes.txt").write_text("not an image")
    (photos / "01_scan.pdf").write_bytes(b"%PDF-1.4 Pillow only writes these")
    for k in range(2):
        Image.new("RGB", (40, 30), (40 * k, 90, 200)).save(photos / f"{k}.png")
    result = cli("show", "--images", photos, "--size", "32", "--out", tmp_path / "out")
    assert result.code == 0, result.err
    assert (tmp_path / "out" / "mixed_grid.png").exists()


def test_options_that_do_nothing_are_named() -> None:
    from batchmix.app.config import TrainConfig

    def notes(methods: list[str], **values: Any) -> list[str]:
        return TrainConfig(**values).unused_options(methods)

    assert notes(["cutmix"]) == [] and notes(["none"]) == []
    assert notes(["none"], alpha=0.4, mix_mode="pair") == [
        "--alpha, --mix-mode: no mixing method is used"
    ]
    assert notes(["cutmix"], cutout_size=8) == [
        "--cutout-size: only CutOut uses it, and no run uses CutOut"
    ]
    assert notes(["mix"], cutout_size=8, mix_weights=(("cutout", 1.0), ("cutmix", 1.0))) == []
    assert notes(["none", "cutout"], cutout_size=8) == []  # a comparison's methods
    # A comparison's report draws a CutOut column with --cutout-size, whatever its methods.
    assert TrainConfig(cutout_size=8).unused_options(["none", "cutmix"], grid=True) == []
    assert notes(["cutmix"], mix_weights=(("mixup", 1.0),)) == [
        "--mix-weights: only --method mix uses it"
    ]
    assert notes(["none"], optimizer="adamw", nesterov=True) == [
        "--momentum and --nesterov: only --optimizer sgd uses them"
    ]
    assert notes(["none"], nesterov=True, momentum=0.0) == [
        "--nesterov: it needs --momentum above 0"
    ]
    beta = "mixup, cutmix, fmix, saliencymix, gridmix"
    assert notes(["cutout", "resizemix"], alpha=0.4) == [
        f"--alpha: none of the methods used draws λ from Beta(α, α) (only {beta} do)"
    ]
    assert notes(["cutout", "mixup"], alpha=0.4) == []  # a comparison: MixUp uses it
    assert notes(["mix"], alpha=0.4, mix_weights=(("cutout", 1.0), ("mosaic", 1.0))) == [
        f"--alpha: none of the methods used draws λ from Beta(α, α) (only {beta} do)"
    ]
    assert notes(["cutout"], mix_mode="sample") == [
        "--mix-mode: CutOut draws a box for every sample in any mode"
    ]
    # A weight-0 method is never drawn; RandomMix over CutOut alone draws CutOut every time.
    assert notes(["mix"], mix_mode="pair", mix_weights=(("cutout", 1.0), ("mixup", 0.0))) == [
        "--mix-mode: CutOut draws a box for every sample in any mode"
    ]
    assert notes(["mix"], mix_mode="pair", mix_weights=(("cutout", 1.0), ("mixup", 1.0))) == []
    assert notes(["none"], model="resnet18", width=16) == [
        "--width: only small-resnet uses it, not resnet18"
    ]
    assert notes(["none"], width=16) == []
    assert notes(["none"], skip_bad_images=True) == [
        "--skip-bad-images: only --data imagefolder uses it, not fashion-mnist"
    ]
    assert notes(["none"], data="digits", lazy_images=True) == [
        "--lazy-images: only --data imagefolder uses it, not digits"
    ]
    assert notes(["none"], data="imagefolder", data_dir="x", skip_bad_images=True) == []
    assert notes(["none"], data="imagefolder", data_dir="x", lazy_images=True) == []
    assert notes(["cutmix"], epochs=3, mix_off_epoch=3) == [
        "--mix-off-epoch 3: mixing is never switched off in 3 epochs"
    ]


def test_unused_runtime_options_are_not_said_to_bind_a_resume() -> None:
    from batchmix.app.cli import _warn_unused
    from batchmix.app.config import TrainConfig

    with pytest.warns(UserWarning) as caught:
        _warn_unused(TrainConfig(data="digits", lazy_images=True, alpha=0.5), ["none"])
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "--alpha: no mixing method is used; it has no effect here (a --resume of this run must "
        "still repeat it).",
        "--lazy-images: only --data imagefolder uses it, not digits; it has no effect here.",
    ]


def test_unused_options_warn_on_the_command_line(cli: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="--cutout-size: only CutOut uses it"):
        result = cli(
            "train",
            *TINY,
            "--epochs",
            "1",
            "--method",
            "cutmix",
            "--cutout-size",
            "4",
            "--out",
            tmp_path / "run",
        )
    assert result.code == 0


@pytest.mark.parametrize(
    ("option", "count", "split"), [("train_subset", 1438, "train"), ("test_subset", 359, "test")]
)
def test_a_subset_larger_than_the_split_is_named(
    option: str, count: int, split: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    from batchmix.app.config import TrainConfig
    from batchmix.app.data import load_data

    flag = "--" + option.replace("_", "-")
    with pytest.warns(UserWarning, match=f"{flag} 100000 is more than the {count} images"):
        data = load_data(TrainConfig(data="digits", **{option: 100000}))
    assert len(getattr(data, split)) == count
    # Training names it; evaluating the run does not again (the run's own record).
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=f"{flag} 100000"):
        assert cli("train", *TINY, "--epochs", "1", flag, "100000", "--out", run).code == 0
    assert cli("evaluate", run).code == 0

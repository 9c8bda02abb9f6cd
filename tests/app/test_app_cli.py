"""The command line: every command's help, usage errors, the module entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

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

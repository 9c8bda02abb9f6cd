"""Fixtures for the application's tests: a tiny fake Fashion-MNIST and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from app_helpers import fake_fashion_arrays, write_idx

from batchmix.app import data as app_data
from batchmix.app.cli import main


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with four small idx files laid out like Fashion-MNIST's."""
    folder = tmp_path_factory.mktemp("fashion")
    for prefix, count, seed in (("train", 256, 0), ("t10k", 64, 1)):
        images, labels = fake_fashion_arrays(count, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def no_system_fashion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Points the Debian package's path at an empty folder, as on a machine without it."""
    empty = tmp_path / "no-debian-package"
    monkeypatch.setattr(app_data, "SYSTEM_FASHION_MNIST", empty)
    return empty


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Runs ``batchmix ARGS`` in this process and returns its exit code and output."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Two torch threads on a busy two-core machine can run 50× slower than one (threads spin
    # while waiting for each other); the tiny models here gain nothing from a second thread.
    torch.set_num_threads(1)

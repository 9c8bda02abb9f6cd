"""Checkpoints: atomic writes that survive a kill, and clear errors for damaged or foreign files."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import TINY

from batchmix.app.checkpoint import capture_rng, load_checkpoint, restore_rng, save_atomic
from batchmix.app.errors import AppError


def test_rng_round_trip() -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = capture_rng()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_save_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_atomic({"a": torch.ones(2)}, path)
    save_atomic({"a": torch.zeros(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from batchmix.app.checkpoint import save_atomic

    class DieWhilePickled:
        # Pickling this object kills the process: a crash in the middle of torch.save.
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGKILL)

    path = sys.argv[1]
    save_atomic({"epoch": 1, "weights": torch.arange(1000.0)}, __import__("pathlib").Path(path))
    save_atomic({"epoch": 2, "weights": torch.zeros(100000), "boom": DieWhilePickled()},
                __import__("pathlib").Path(path))
    """
)


def test_kill_during_write_keeps_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], timeout=120, check=False
    )
    assert result.returncode == -9  # killed mid-write
    survivors = sorted(p.name for p in tmp_path.iterdir())
    assert "checkpoint.pt" in survivors
    assert any(".tmp-" in name for name in survivors)  # the half-written file stayed aside
    payload = torch.load(path, weights_only=True)
    assert payload["epoch"] == 1 and torch.equal(payload["weights"], torch.arange(1000.0))
    save_atomic({"epoch": 3}, path)  # the next save clears what the killed one left
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from batchmix.app.cli import main

    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


class TestBadCheckpoints:
    def test_truncated(self, trained: Path, tmp_path: Path, cli: Callable[..., object]) -> None:
        data = (trained / "checkpoint.pt").read_bytes()
        cut = tmp_path / "cut.pt"
        cut.write_bytes(data[: len(data) // 2])
        result = cli("evaluate", str(cut))
        assert result.code == 2  # type: ignore[attr-defined]
        assert "cannot read checkpoint" in result.err and "truncated" in result.err  # type: ignore[attr-defined]

    def test_not_a_checkpoint(self, tmp_path: Path, cli: Callable[..., object]) -> None:
        other = tmp_path / "weights.pt"
        torch.save({"state_dict": {}}, other)
        result = cli("evaluate", str(other))
        assert result.code == 2 and "is not a batchmix checkpoint" in result.err  # type: ignore[attr-defined]

    def test_missing(self, tmp_path: Path, cli: Callable[..., object]) -> None:
        result = cli("cam", str(tmp_path / "nothing.pt"))
        assert result.code == 2 and "no checkpoint at" in result.err  # type: ignore[attr-defined]

    def test_weights_of_another_model(self, trained: Path, tmp_path: Path) -> None:
        payload = load_checkpoint(trained)
        payload["model"] = {**payload["model"], "width": 16}  # the record says another model
        forged = tmp_path / "forged.pt"
        torch.save(payload, forged)
        from batchmix.app.train import load_trained

        with pytest.raises(AppError, match=r"do not fit a 'small-resnet' model .* another model"):
            load_trained(forged)

    def test_resume_with_another_model_is_refused(
        self, trained: Path, cli: Callable[..., object]
    ) -> None:
        before = (trained / "checkpoint.pt").read_bytes()
        with pytest.warns(UserWarning, match="--width: only small-resnet uses it"):
            result = cli(
                "train",
                *TINY,
                "--epochs",
                "1",
                "--model",
                "resnet18",
                "--out",
                str(trained),
                "--resume",
            )
        assert result.code == 2  # type: ignore[attr-defined]
        assert "model: saved 'small-resnet', given 'resnet18'" in result.err  # type: ignore[attr-defined]
        assert (trained / "checkpoint.pt").read_bytes() == before

    def test_classes_in_another_order_are_refused(
        self, trained: Path, tmp_path: Path, cli: Callable[..., object]
    ) -> None:
        payload = load_checkpoint(trained)
        payload["classes"] = list(reversed(payload["classes"]))  # as if folders were renamed
        forged = tmp_path / "renamed.pt"
        torch.save(payload, forged)
        result = cli("evaluate", str(forged))
        assert result.code == 2  # type: ignore[attr-defined]
        assert "was trained on the classes ['9', '8'" in result.err  # type: ignore[attr-defined]
        assert "so its labels would not mean what the model learnt" in result.err  # type: ignore[attr-defined]

    def test_damaged_configuration_names_the_checkpoint(
        self, trained: Path, tmp_path: Path, cli: Callable[..., object]
    ) -> None:
        for config, message in (
            ("x", "expected the saved configuration to be a mapping"),
            ({"method": "bogus"}, "unknown method 'bogus'"),
        ):
            payload = load_checkpoint(trained)
            payload["config"] = (
                config if isinstance(config, str) else {**payload["config"], **config}
            )
            forged = tmp_path / "forged.pt"
            torch.save(payload, forged)
            result = cli("evaluate", str(forged))
            assert result.code == 2  # type: ignore[attr-defined]
            assert f"checkpoint {forged} has an unreadable configuration" in result.err  # type: ignore[attr-defined]
            assert message in result.err  # type: ignore[attr-defined]

    def test_a_plain_pickle_is_refused_without_unsafe_advice(
        self, tmp_path: Path, cli: Callable[..., object]
    ) -> None:
        import pickle

        other = tmp_path / "pickled.pt"
        other.write_bytes(pickle.dumps({"weights": {1, 2}}, protocol=4))
        result = cli("evaluate", str(other))
        assert result.code == 2  # type: ignore[attr-defined]
        assert "holds Python objects other than tensors" in result.err  # type: ignore[attr-defined]
        assert "weights_only" not in result.err and "warning" not in result.err  # type: ignore[attr-defined]

    def test_evaluate_reports_accuracy(self, trained: Path, cli: Callable[..., object]) -> None:
        import json

        result = cli("evaluate", str(trained / "checkpoint.pt"), "--json")
        assert result.code == 0  # type: ignore[attr-defined]
        metrics = json.loads(result.out)  # type: ignore[attr-defined]
        assert metrics["epoch"] == 1 and metrics["images"] == 359
        assert 0 <= metrics["test_top1"] <= metrics["test_top5"] <= 100
        final = json.loads((trained / "summary.json").read_text())["final"]
        assert metrics["test_top1"] == pytest.approx(final["test_top1"])


def test_resume_from_a_truncated_checkpoint_is_refused(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    out = tmp_path / "run"
    assert cli("train", *TINY, "--epochs", "1", "--out", str(out)).code == 0  # type: ignore[attr-defined]
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = cli("train", *TINY, "--epochs", "2", "--out", str(out), "--resume")
    assert result.code == 2 and "cannot read checkpoint" in result.err  # type: ignore[attr-defined]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

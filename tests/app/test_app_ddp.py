"""Two CPU processes on gloo under torchrun: they stay in sync and rank 0's checkpoint evaluates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
from app_helpers import TINY


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_two_processes_stay_in_sync(tmp_path: Path, cli: Callable[..., Any]) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "batchmix", "train", *TINY, "--method", "cutmix", "--epochs", "2",
        "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2
    digests = summary["parameter_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1] and summary["ranks_in_sync"]
    # Only rank 0 writes: one metrics line and one progress line per epoch.
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert result.stdout.count("epoch 2/2") == 1
    evaluated = cli("evaluate", str(out), "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["test_top1"] == pytest.approx(summary["final"]["test_top1"])

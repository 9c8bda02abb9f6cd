"""The evidence pipeline (experiments/evidence.py) regenerates a miniature of each table."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("evidence", ROOT / "experiments" / "evidence.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["evidence"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_miniature_tables(fashion_dir: Path, tmp_path: Path) -> None:
    evidence = _load()
    out, docs = tmp_path / "evidence", tmp_path / "docs"
    args = ["--out", str(out), "--mini", "--data-dir", str(fashion_dir), "--jobs", "2"]
    assert evidence.main([*args, "--publish", str(docs)]) == 0
    page = (docs / "RESULTS.md").read_text()
    # Classification table: one row per method, mean ± std over the two seeds.
    for method in ("Baseline", "CutMix"):
        assert re.search(rf"\| \**{method}\** \| \**\d+\.\d\d ± \d+\.\d\d", page), method
    # The short schedule beside the long one, per method.
    short = page.split("### The same with a 1-epoch schedule")[1].split("###")[0]
    assert "| Method | Top-1 error, 1 epochs | Top-1 error, 2 epochs |" in short
    assert re.search(r"\| \**CutMix\** \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± \d+\.\d\d \|", short)
    assert "After 2 epochs the baseline's training loss is" in page
    # Error against size: one row per size, and the figure.
    assert re.search(r"\| 32 \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± \d+\.\d\d \|", page)
    # Localisation table with accuracy mean ± std.
    assert re.search(r"\| CutMix \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± \d+\.\d\d \|", page)
    assert "Command: `python -m batchmix compare --data fashion-mnist-loc" in page
    for name in ("error_vs_size.png", "localisation_cam.png", "classification_cam.png"):
        assert (docs / "results" / name).read_bytes()[:4] == b"\x89PNG"
    assert "](results/error_vs_size.png)" in (docs / "RESULTS.md").read_text()
    # A second run reuses every finished table instead of training again.
    before = (out / "classification-2ep" / "results.json").stat().st_mtime_ns
    assert evidence.main(args) == 0
    assert (out / "classification-2ep" / "results.json").stat().st_mtime_ns == before

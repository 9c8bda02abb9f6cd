"""The library demo behind `make demo` writes its grid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_grid(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "demo.py"),
            "--out",
            str(tmp_path),
            "--size",
            "48",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert (
        "After CutMix: mixed.shape = torch.Size([4, 3, 48, 48]), targets.shape = torch.Size([4, 4])"
        in result.stdout
    )
    grid = tmp_path / "mixed_grid.png"
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

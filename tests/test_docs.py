"""The README's Python snippets and the docstring examples run as written."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
import torch

import batchmix
from batchmix import collate, functional, losses, transforms

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    # Where a snippet's output is shown in the README, the printed shapes must match it.
    if "After CutMix/MixUp" in SNIPPETS[index]:
        assert "labels.shape = torch.Size([4, 100])" in printed


@pytest.mark.parametrize(
    "module", [functional, transforms, collate, losses], ids=lambda m: m.__name__
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(
        module, globs={"torch": torch, "batchmix": batchmix, **vars(module)}, verbose=False
    )  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0

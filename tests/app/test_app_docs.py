"""The application's docstring examples run, and docs/APP.md names every command and option."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import torch

from batchmix.app import models
from batchmix.app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_docstring_examples() -> None:
    result = doctest.testmod(models, globs={"torch": torch, **vars(models)}, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_app_doc_mentions_every_option() -> None:
    text = (ROOT / "docs" / "APP.md").read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[union-attr]
    missing = []
    for name, sub in commands.items():  # type: ignore[union-attr]
        assert f"batchmix {name}" in text
        for action in sub._actions:
            for option in action.option_strings:
                if (
                    option.startswith("--")
                    and option != "--help"
                    and not re.search(re.escape(option) + r"\b", text)
                ):
                    missing.append(f"{name} {option}")
    assert not missing, missing

"""Shared fixtures: devices to run on, hypothesis profile."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "batchmix",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("batchmix")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    # The CI machine has two shared cores: one thread per test process avoids threads that
    # spin waiting for a busy core (DataLoader workers and subprocesses add their own).
    torch.set_num_threads(1)

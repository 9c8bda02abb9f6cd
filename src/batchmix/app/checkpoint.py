"""Checkpoints: written atomically, read with messages that say what is wrong.

A checkpoint is a dict of tensors and plain values (so it loads with ``weights_only=True``):
the run's configuration, how to rebuild the model, the model's, optimiser's and scheduler's
states, the number of completed epochs, the random-number generators' states and the last
epoch's metrics.

Writing goes to a temporary file in the same folder, which is flushed, synced and renamed over
the old checkpoint (``os.replace`` is atomic on POSIX): a process killed mid-write leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from batchmix.app.errors import AppError

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "capture_rng",
    "load_checkpoint",
    "load_weights",
    "resolve_checkpoint",
    "restore_rng",
    "save_atomic",
]

FORMAT = "batchmix-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
_TEMP_PREFIX = "."
_TEMP_MARK = ".tmp-"


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Saves ``payload`` to ``path`` through a synced temporary file and an atomic rename."""
    path = Path(path)
    for stale in path.parent.glob(f"{_TEMP_PREFIX}{path.name}{_TEMP_MARK}*"):
        stale.unlink(missing_ok=True)  # left by a process killed while writing
    temporary = path.with_name(f"{_TEMP_PREFIX}{path.name}{_TEMP_MARK}{os.getpid()}")
    try:
        with open(temporary, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    # Make the rename itself durable: sync the folder entry.
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the checkpoint inside a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise AppError(f"no checkpoint at {path}; expected a file written by `batchmix train`.")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Reads a checkpoint (file or run folder) onto the CPU.

    Raises:
        AppError: the file is missing, truncated, corrupt or not a batchmix checkpoint.
    """
    path = resolve_checkpoint(path)
    try:
        with warnings.catch_warnings():  # torch's notes on foreign files; the error says it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # damaged, or objects other than tensors and plain data
        raise AppError(
            f"cannot read checkpoint {path}: it is truncated or corrupt, or holds Python objects "
            "other than tensors and plain data (not loaded, for safety); either way it is not a "
            "batchmix checkpoint."
        ) from None
    except Exception as error:  # torch raises several types for damaged files
        raise AppError(
            f"cannot read checkpoint {path}: it is truncated, corrupt or not a batchmix "
            f"checkpoint ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise AppError(
            f"{path} is not a batchmix checkpoint (expected format {FORMAT!r}, found {found!r})."
        )
    missing = [
        k for k in ("config", "model", "model_state", "epoch", "classes") if k not in payload
    ]
    if missing:
        raise AppError(
            f"checkpoint {path} lacks {missing}; it was not written by this version of batchmix."
        )
    return payload


def load_weights(model: nn.Module, payload: dict[str, Any], path: str | Path) -> None:
    """Loads the checkpoint's weights into ``model``, or says why they do not fit."""
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = " ".join(lines[1:3])[:300]
        raise AppError(
            f"the weights in {path} do not fit a {payload['model'].get('name')!r} model built from its "
            f"own settings; the file was written for another model or edited ({detail})."
        ) from None


def capture_rng() -> dict[str, Any]:
    """torch's, NumPy's and Python's global random states as checkpoint-friendly values."""
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if (
        "cuda" in state
        and torch.cuda.is_available()
        and len(state["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(state["cuda"])

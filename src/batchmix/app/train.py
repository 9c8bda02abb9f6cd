"""One training loop, read top to bottom: data, model, optimiser, epochs, checkpoints.

Runs on one process, or on several under ``torchrun`` with DistributedDataParallel (NCCL on
GPUs, gloo on CPUs): a DistributedSampler splits each epoch between ranks, every rank draws its
own random stream, and only rank 0 writes metrics, logs and checkpoints.

Reproducibility: every random draw of epoch ``e`` on rank ``r`` (augmentation, the mix's λ and
boxes, the shuffle, the DataLoader workers' seeds) comes from streams seeded with
``(seed, e, r)`` at the start of the epoch. A run resumed from the checkpoint of epoch ``e``
therefore draws exactly what the uninterrupted run drew, and ends with the same weights (on
the CPU; GPU kernels may be non-deterministic).

Output folder (``--out``): ``config.json``, ``metrics.jsonl`` (one JSON object per epoch),
``checkpoint.pt`` (replaced atomically after each epoch) and ``summary.json`` at the end.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

import batchmix
from batchmix.app.checkpoint import (
    CHECKPOINT_NAME,
    FORMAT,
    capture_rng,
    load_checkpoint,
    load_weights,
    restore_rng,
    save_atomic,
)
from batchmix.app.config import TrainConfig
from batchmix.app.data import Data, load_data
from batchmix.app.errors import AppError, app_message
from batchmix.app.models import CamClassifier, build_model

__all__ = [
    "RUN_FILES",
    "build_mixer",
    "evaluate",
    "load_trained",
    "rebuild_model",
    "train",
]

#: The files that make a folder "hold a run".
RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINT_NAME, "summary.json")
#: Held by the process that writes the run (see _RunLock).
LOCK_NAME = ".batchmix.lock"
#: What ``batchmix cam RUN`` writes into the run by default: maps of the model a fresh start
#: replaces, removed with it.
CAM_FILES = ("cam.png", "cam.json")


# ----------------------------------------------------------------------------- the mix


def build_mixer(config: TrainConfig, num_classes: int, image_size: int) -> nn.Module | None:
    """The batch transform of ``config.method`` (``None`` for ``"none"``)."""

    # Pair mode needs partners that pair both ways: timm's, sample i with B−1−i.
    partner = "flip" if config.mix_mode == "pair" else "roll"

    def make(method: str) -> nn.Module:
        if method == "mixup":
            return batchmix.MixUp(
                num_classes=num_classes,
                alpha=config.alpha,
                p=config.mix_prob,
                mode=config.mix_mode,  # type: ignore[arg-type]
                partner=partner,  # type: ignore[arg-type]
                label_smoothing=config.label_smoothing,
            )
        if method in ("cutmix", "fmix", "saliencymix", "gridmix"):
            factory: Callable[..., nn.Module] = {
                "cutmix": batchmix.CutMix,
                "fmix": batchmix.FMix,
                "saliencymix": batchmix.SaliencyMix,
                "gridmix": batchmix.GridMix,
            }[method]
            return factory(
                num_classes=num_classes,
                alpha=config.alpha,
                p=config.mix_prob,
                mode=config.mix_mode,
                partner=partner,
                label_smoothing=config.label_smoothing,
            )
        if method in ("resizemix", "mosaic"):  # no λ from Beta: their geometry sets the weights
            other = batchmix.ResizeMix if method == "resizemix" else batchmix.Mosaic
            return other(
                num_classes=num_classes,
                p=config.mix_prob,
                mode=config.mix_mode,  # type: ignore[arg-type]
                partner=partner if method == "resizemix" else "roll",  # type: ignore[arg-type]
                label_smoothing=config.label_smoothing,
            )
        # CutOut's square defaults to half the image side (16 px on CIFAR's 32, as in the paper).
        return batchmix.CutOut(
            size=config.cutout_size or max(1, image_size // 2),
            num_classes=num_classes,
            p=config.mix_prob,
            label_smoothing=config.label_smoothing,
        )

    if config.method == "none":
        return None
    if config.method == "mix":
        names = [name for name, _ in config.mix_weights]
        # Pair mode draws the method per pair too, as timm's pair mode does; otherwise per batch.
        return batchmix.RandomMix(
            [make(n) for n in names],
            p=[w for _, w in config.mix_weights],
            mode="pair" if config.mix_mode == "pair" else "batch",
        )
    return make(config.method)


# ----------------------------------------------------------------------- processes, seeds


@dataclass(frozen=True)
class Processes:
    """Where this process stands: its rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _check_device(device: str) -> int | None:
    """The GPU index of ``cuda:N`` (``None`` for the other forms), checked against what torch
    sees; ``auto``, ``cpu`` and ``cuda`` pass as they are."""
    if device in ("auto", "cpu", "cuda"):
        return None
    index = device.removeprefix("cuda:")
    if not device.startswith("cuda:") or not index.isdigit():
        raise AppError(f"--device: expected auto, cpu, cuda or cuda:N, got {device!r}.")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(index) >= count:
        seen = f"GPUs 0 to {count - 1}" if count else "no GPU"
        raise AppError(f"--device {device} names GPU {index}, but torch sees {seen}.")
    return int(index)


def _start_processes(device: str) -> Processes:
    """Joins the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    _check_device(device)
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise AppError(f"--device {device} asked for a GPU, but torch sees none.")
    if world > 1 and device.startswith("cuda:"):
        raise AppError(
            f"--device {device} names one GPU, but under torchrun each of the {world} processes "
            "takes the GPU of its local rank; pass --device cuda (or auto)."
        )
    if world > 1 and use_cuda and local_rank >= torch.cuda.device_count():
        raise AppError(
            f"this process has local rank {local_rank} under torchrun, and takes the GPU of that "
            f"index, but torch sees {torch.cuda.device_count()} GPU(s) here; start at most that "
            "many processes per node (--nproc-per-node), or pass --device cpu."
        )
    if world > 1:
        if use_cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        rank = dist.get_rank()
    else:
        rank = 0
    if use_cuda:
        chosen = torch.device(device if device.startswith("cuda:") else f"cuda:{local_rank}")
    else:
        chosen = torch.device("cpu")
    return Processes(rank=rank, world=world, device=chosen)


def _agree(processes: Processes, message: str | None) -> None:
    """Raises rank 0's error (if any) on every rank, so no rank waits for a failed one."""
    if processes.world > 1:
        box = [message]
        dist.broadcast_object_list(box, src=0)
        message = box[0]
    if message:
        raise AppError(message)


def _stream_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A 63-bit seed for one random stream of one epoch on one rank."""
    state = np.random.SeedSequence([seed, epoch, rank, stream]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _stopped(error: AppError, what: str, epoch: int) -> AppError:
    """An unreadable item's error (a file of ``--lazy-images``) with where the run stands:
    ``what`` (training or evaluating epoch ``epoch + 1``, 0-based) stopped there."""
    where = (
        f"the checkpoint of epoch {epoch} is kept, and --resume goes on from it"
        if epoch
        else "no epoch had finished, and --resume starts the run again"
    )
    return AppError(f"{app_message(error)} {what} stopped there; {where}.")


def _batches(loader: DataLoader[Any], epoch: int) -> Iterator[Any]:
    """The loader's batches; an unreadable item stops the run saying where it stands."""
    try:
        yield from loader
    except AppError as error:
        raise _stopped(error, f"Epoch {epoch + 1}", epoch) from None


def _seed_epoch(seed: int, epoch: int, rank: int, loader_generator: torch.Generator) -> None:
    torch.manual_seed(_stream_seed(seed, epoch, rank, 0))
    np.random.seed(_stream_seed(seed, epoch, rank, 1) % 2**32)
    random.seed(_stream_seed(seed, epoch, rank, 2))
    loader_generator.manual_seed(_stream_seed(seed, epoch, rank, 3))


# ---------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset[tuple[Tensor, int]],
    device: torch.device,
    batch_size: int = 256,
) -> dict[str, float]:
    """Test loss, top-1 and top-5 accuracy (%), and top-1 error (%) of ``model`` on ``dataset``."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    total, loss, top1, top5 = 0, 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = ranked == labels[:, None]
        top1 += int(hits[:, 0].sum())
        top5 += int(hits.any(dim=1).sum())
        total += int(labels.shape[0])
    model.train(was_training)
    if total == 0:
        raise AppError("the test split is empty.")
    return {
        "test_loss": loss / total,
        "test_top1": 100.0 * top1 / total,
        "test_top5": 100.0 * top5 / total,
        "test_error": 100.0 - 100.0 * top1 / total,
    }


def rebuild_model(payload: dict[str, Any], path: str | Path) -> CamClassifier:
    """The checkpoint's model with its weights, in evaluation mode, on the CPU."""
    spec = payload["model"]
    try:
        model = build_model(
            str(spec["name"]),
            in_channels=int(spec["in_channels"]),
            num_classes=int(spec["num_classes"]),
            image_size=int(spec["image_size"]),
            width=int(spec["width"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise AppError(f"checkpoint {path} has an unreadable model record ({error}).") from None
    load_weights(model, payload, path)
    return model.eval()


def load_trained(
    checkpoint: str | Path, *, data_dir: str | None = None, download: bool = True
) -> tuple[CamClassifier, Data, dict[str, Any]]:
    """Rebuilds a checkpoint's model and loads its data (``data_dir`` overrides the saved one)."""
    payload = load_checkpoint(checkpoint)
    config = saved_config(payload, checkpoint)
    config = TrainConfig.from_dict(
        {**config.to_dict(), "data_dir": data_dir or config.data_dir, "download": download}
    )
    model = rebuild_model(payload, checkpoint)
    data = load_data(config, warn=False)
    spec = payload["model"]
    if data.num_classes != int(spec["num_classes"]) or data.channels != int(spec["in_channels"]):
        raise AppError(
            f"checkpoint {checkpoint} was trained on {spec['num_classes']} classes of "
            f"{spec['in_channels']}-channel images; the data found now has {data.num_classes} "
            f"classes of {data.channels}-channel images."
        )
    saved_classes = [str(name) for name in payload["classes"]]
    if saved_classes != list(data.classes):
        raise AppError(
            f"checkpoint {checkpoint} was trained on the classes {saved_classes}, in that "
            f"order; the data found now has {list(data.classes)}, so its labels would not "
            "mean what the model learnt."
        )
    return model, data, payload


def saved_config(payload: dict[str, Any], path: str | Path) -> TrainConfig:
    """The settings a checkpoint was trained with, or an error naming the checkpoint."""
    try:
        return TrainConfig.from_dict(payload["config"])
    except AppError as error:
        raise AppError(f"checkpoint {path} has an unreadable configuration: {error}") from None
    except (TypeError, ValueError) as error:
        raise AppError(
            f"checkpoint {path} has an unreadable configuration ({type(error).__name__}: {error})."
        ) from None


# ------------------------------------------------------------------------- output folder


def _check_out(out: Path, resume: bool, overwrite: bool) -> str | None:
    """Why ``out`` cannot take this run (``None`` when it can)."""
    if resume and overwrite:
        return "--resume and --overwrite exclude each other: continue the run, or replace it."
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a folder."
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not (resume or overwrite):
        return (
            f"{out} already holds a run ({', '.join(held)}); pass --resume to continue it or "
            "--overwrite to replace it."
        )
    existing = out  # the folder, or the nearest one above it that exists: can files be made?
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"--out {out}: expected a folder, but {existing} is not one."
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return (
            f"--out {out}: expected a writable folder, got {error.strerror or error} in {existing}."
        )
    return None


def _remove_cam(folder: Path) -> None:
    """Removes the CAM figure and record of the model a run being replaced had (the folder
    too, once empty); anything else, or of another kind (a folder by those names), stays."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for name in CAM_FILES:
        path = folder / name
        if path.is_symlink() or path.is_file():
            path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def _comparable(config: TrainConfig, data: Data) -> TrainConfig:
    """``config`` with the image size it resolves to on ``data`` (``None`` means its own)."""
    return dataclasses.replace(config, image_size=config.image_size or data.image_size)


def _check_resumable(out: Path, config: TrainConfig, saved: TrainConfig, data: Data) -> None:
    changed = _comparable(config, data).differences(_comparable(saved, data))
    if changed:
        detail = ", ".join(
            f"{k}: saved {getattr(saved, k)!r}, given {getattr(config, k)!r}" for k in changed
        )
        raise AppError(f"cannot resume {out}: the command differs from the saved run ({detail}).")


def _check_fresh_resume(out: Path, config: TrainConfig, data: Data) -> None:
    """``--resume`` on a folder without a checkpoint starts afresh, but only where that loses
    nothing: no completed epoch on record, and the same settings as the folder's config."""
    done = _read_metrics(out / "metrics.jsonl", upto=2**62)
    if done or (out / "summary.json").exists():
        raise AppError(
            f"cannot resume {out}: it records {len(done)} completed epoch(s) but has no "
            f"{CHECKPOINT_NAME} to continue from; pass --overwrite to replace the run."
        )
    config_path = out / "config.json"
    if config_path.exists():
        try:
            saved = TrainConfig.from_dict(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, TypeError, AppError) as error:
            raise AppError(
                f"cannot resume {out}: its config.json is unreadable ({error}); pass --overwrite "
                "to replace the run."
            ) from None
        _check_resumable(out, config, saved, data)


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)


def _read_metrics(path: Path, upto: int) -> list[dict[str, Any]]:
    """The metric lines of epochs ``<= upto`` (later ones belong to an epoch being redone)."""
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if isinstance(record, dict) and int(record.get("epoch", 0)) <= upto:
            lines.append(record)
    return lines


@contextmanager
def _progress(enabled: bool, total: int, description: str) -> Iterator[Any]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, disable=not enabled, leave=False, file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


def _parameter_digest(model: nn.Module) -> str:
    flat = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    return hashlib.sha256(flat.numpy().tobytes()).hexdigest()


# ------------------------------------------------------------------------------ training


# Descriptors of the run locks this process holds; forked children (DataLoader workers) close
# their copies at once, so that a lock ends with the process that took it, not its workers.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for descriptor in _HELD_LOCKS:
        with suppress(OSError):
            os.close(descriptor)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


class _RunLock:
    """An exclusive lock on a run folder (``.batchmix.lock``), held while a process writes to
    it, so that two processes (a second ``--resume``, say, while the first still runs) cannot
    write one run at once. The operating system drops it when the process ends, however it
    ends (its forked workers close their copies); the file itself stays (removing it would race
    with a process opening it). Where the file system cannot lock (``flock`` unsupported, as
    on some network file systems), a warning says so and the run goes on without the lock."""

    def __init__(self) -> None:
        self._descriptor: int | None = None

    def acquire(self, out: Path) -> str | None:
        """Takes the lock of ``out``; why it cannot (``None`` when it did, or cannot lock)."""
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return None
        descriptor = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(descriptor)
                warnings.warn(
                    f"cannot lock {out / LOCK_NAME} ({error.strerror or error}); the run goes "
                    "on, but nothing stops a second process from writing to the same folder.",
                    stacklevel=2,
                )
                return None
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            return (
                f"{out} is in use by another batchmix process (pid {holder}); wait for it to "
                "end or stop it first. Killing torchrun with SIGKILL leaves its worker "
                "processes running: stop those too."
            )
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor
        _HELD_LOCKS.add(descriptor)
        return None

    def __enter__(self) -> _RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._descriptor is not None:
            _HELD_LOCKS.discard(self._descriptor)
            os.close(self._descriptor)  # releases the lock
            self._descriptor = None


def run_in_use(folder: Path) -> str | None:
    """Why ``folder`` must not be removed now: another process holds its run lock."""
    if not (folder / LOCK_NAME).is_file():
        return None
    with _RunLock() as lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a file system that cannot lock: nothing to learn
        refusal = lock.acquire(folder)
    return refusal


def train(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False, data: Data | None = None
) -> dict[str, Any]:
    """Trains as ``config`` says and returns the run's summary (also in ``summary.json``).

    Args:
        config: the run's settings.
        resume: continue from ``config.out``'s checkpoint (a fresh start if there is none).
        overwrite: replace a run already in ``config.out``.
        data: the data of ``config``, when the caller has already loaded it.

    Raises:
        AppError: bad settings, missing data, an occupied output folder, a checkpoint that does
            not match; nothing in ``config.out`` is changed before these checks pass.
    """
    with _RunLock() as lock:
        return _train(config, resume, overwrite, data, lock)


def _train(
    config: TrainConfig, resume: bool, overwrite: bool, data: Data | None, lock: _RunLock
) -> dict[str, Any]:
    """:func:`train`, taking ``lock`` on the run folder before its first write there."""
    processes = _start_processes(config.device)
    out = Path(config.out)
    _agree(processes, _check_out(out, resume, overwrite) if processes.main else None)

    # Data and model: everything that can fail on bad input happens before the folder is touched.
    if data is None:
        data = load_data(config)
    torch.manual_seed(config.seed)  # the initial weights: the same on every rank, for a given seed
    model = build_model(
        config.model,
        in_channels=data.channels,
        num_classes=data.num_classes,
        image_size=data.image_size,
        width=config.width,
    )
    model_spec = {
        "name": config.model,
        "in_channels": data.channels,
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        "width": config.width,
    }
    # What is saved: the data folder as an absolute path, so evaluate and cam find it from
    # anywhere.
    if config.data_dir:
        config = dataclasses.replace(config, data_dir=str(Path(config.data_dir).resolve()))
    checkpoint: dict[str, Any] | None = None
    if resume and (out / CHECKPOINT_NAME).exists():
        checkpoint = load_checkpoint(out / CHECKPOINT_NAME)
        _check_resumable(out, config, saved_config(checkpoint, out / CHECKPOINT_NAME), data)
        saved_world = int(checkpoint.get("world", 1))
        if saved_world != processes.world:
            raise AppError(
                f"cannot resume {out}: it was trained on {saved_world} process(es), this command "
                f"runs {processes.world}; the learning-rate schedule and the split of the data "
                "depend on it. Launch it as it was launched."
            )
        threads = checkpoint.get("threads")
        if processes.main and threads is not None and int(threads) != torch.get_num_threads():
            print(
                f"batchmix: warning: {out} was trained with {threads} CPU thread(s), this run "
                f"uses {torch.get_num_threads()}; it resumes, but float sums may round "
                "differently, so not bit for bit (pass --threads to match).",
                file=sys.stderr,
            )
        load_weights(model, checkpoint, out / CHECKPOINT_NAME)
    elif resume:
        refusal = None
        if processes.main:
            try:
                _check_fresh_resume(out, config, data)
            except AppError as error:
                refusal = str(error)
        _agree(processes, refusal)
    model.to(processes.device)

    # The mix runs inside the DataLoader's collate function, in the worker processes.
    mixer = build_mixer(config, data.num_classes, data.image_size)
    collate = batchmix.MixCollate(mixer) if mixer is not None else default_collate
    sampler: DistributedSampler[tuple[Tensor, int]] | None = None
    if processes.world > 1:
        sampler = DistributedSampler(
            data.train,
            num_replicas=processes.world,
            rank=processes.rank,
            shuffle=True,
            seed=config.seed,
        )
    per_rank = len(data.train) // processes.world
    loader_generator = torch.Generator()
    loader = DataLoader(
        data.train,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        generator=loader_generator,
        drop_last=per_rank >= config.batch_size,
        pin_memory=processes.device.type == "cuda",
    )
    steps_per_epoch = len(loader)

    # Optimiser and schedule (stepped per batch).
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    else:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
    total_steps = max(1, config.epochs * steps_per_epoch)
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    elif config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=total_steps,
            cycle_momentum=config.optimizer == "adamw" or config.momentum > 0,
        )
    else:
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)

    start_epoch = 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        scheduler.load_state_dict(checkpoint["scheduler_state"])
        restore_rng(checkpoint["rng"])
        start_epoch = int(checkpoint["epoch"])

    network: nn.Module = model
    if processes.world > 1:
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[processes.device.index] if processes.device.type == "cuda" else None
        )

    # The folder: only now, with every check passed, does rank 0 write to it.
    metrics_path = out / "metrics.jsonl"
    history: list[dict[str, Any]] = []
    refusal = None
    if processes.main:
        out.mkdir(parents=True, exist_ok=True)
        refusal = lock.acquire(out)
    _agree(processes, refusal)
    if processes.main:
        if checkpoint is None:
            if overwrite and any((out / name).exists() for name in RUN_FILES):
                _remove_cam(out / "cam")  # maps of the model being replaced; first, so that
                # a failure here leaves the old run whole
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            _write_json(out / "config.json", config.to_dict())
            metrics_path.write_text("")
        else:
            history = _read_metrics(metrics_path, start_epoch)
            temporary = metrics_path.with_name(f".{metrics_path.name}.tmp-{os.getpid()}")
            temporary.write_text("".join(json.dumps(r) + "\n" for r in history))
            os.replace(temporary, metrics_path)  # a kill here keeps the old lines whole
            (out / "summary.json").unlink(missing_ok=True)
    if processes.world > 1:
        dist.barrier()

    for epoch in range(start_epoch, config.epochs):
        _seed_epoch(config.seed, epoch, processes.rank, loader_generator)
        if sampler is not None:
            sampler.set_epoch(epoch)
        mixing = config.mix_off_epoch == 0 or epoch < config.mix_off_epoch
        if mixer is not None:
            mixer.enabled = mixing  # type: ignore[assignment]  # before the iterator exists: workers copy the mixer then

        network.train()
        started = time.perf_counter()
        seen, loss_sum = 0, 0.0
        with _progress(
            processes.main and config.progress,
            steps_per_epoch,
            f"epoch {epoch + 1}/{config.epochs}",
        ) as bar:
            for images, targets in _batches(loader, epoch):
                images = images.to(processes.device, non_blocking=True)
                targets = targets.to(processes.device, non_blocking=True)
                logits = network(images)
                if targets.ndim == 1:
                    loss = F.cross_entropy(logits, targets, label_smoothing=config.label_smoothing)
                else:  # (B, K) rows from the mix, already smoothed
                    loss = batchmix.mix_cross_entropy(logits, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                batch_loss = loss.item()
                seen += int(images.shape[0])
                loss_sum += batch_loss * int(images.shape[0])
                bar.set_postfix(loss=f"{batch_loss:.3f}", refresh=False)
                bar.update()
        elapsed = time.perf_counter() - started
        if not (loss_sum == loss_sum and abs(loss_sum) != float("inf")):
            raise AppError(
                f"the training loss became {loss_sum / max(seen, 1)} in epoch {epoch + 1}; "
                "lower --lr or check the data."
            )

        if processes.main:
            try:
                tested = evaluate(model, data.test, processes.device)
            except AppError as error:
                raise _stopped(error, f"The evaluation after epoch {epoch + 1}", epoch) from None
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                **tested,
                "images_per_s": seen * processes.world / max(elapsed, 1e-9),
                "epoch_s": elapsed,
                "lr": float(scheduler.get_last_lr()[0]),
                "mixing": bool(mixer is not None and mixing),
            }
            history.append(record)
            with metrics_path.open("a") as stream:
                stream.write(json.dumps(record) + "\n")
            save_atomic(
                {
                    "format": FORMAT,
                    "config": config.to_dict(),
                    "model": model_spec,
                    "classes": list(data.classes),
                    "epoch": epoch + 1,
                    "world": processes.world,
                    "threads": torch.get_num_threads(),
                    "model_state": model.state_dict(),
                    "optimizer_state": optimizer.state_dict(),
                    "scheduler_state": scheduler.state_dict(),
                    "rng": capture_rng(),
                    "metrics": record,
                },
                out / CHECKPOINT_NAME,
            )
            print(
                f"epoch {epoch + 1}/{config.epochs}  loss {record['train_loss']:.4f}  "
                f"test top-1 {record['test_top1']:.2f}%  top-5 {record['test_top5']:.2f}%  "
                f"{record['images_per_s']:.0f} img/s",
                flush=True,
            )
        if processes.world > 1:
            dist.barrier()

    # Every rank must hold the same weights: compare digests of the parameters.
    digests = [_parameter_digest(model)]
    if processes.world > 1:
        gathered: list[str | None] = [None] * processes.world
        dist.all_gather_object(gathered, digests[0])
        digests = [str(d) for d in gathered]
    summary = {
        "out": str(out),
        "epochs": config.epochs,
        "final": history[-1] if history else {},
        "history": history,
        "ranks": processes.world,
        "device": str(processes.device),
        "parameter_sha256": digests,
        "ranks_in_sync": len(set(digests)) == 1,
    }
    if processes.main:
        _write_json(out / "summary.json", summary)
        if not summary["ranks_in_sync"]:
            print("batchmix: warning: the ranks' parameters differ at the end.", file=sys.stderr)
    return summary

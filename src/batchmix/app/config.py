"""The training run's settings: one frozen dataclass, checked once, saved with every checkpoint."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batchmix.app.errors import AppError

__all__ = [
    "DATASETS",
    "METHODS",
    "MODELS",
    "OPTIMIZERS",
    "RUNTIME_FIELDS",
    "SCHEDULES",
    "TrainConfig",
    "parse_mix_weights",
]

DATASETS = ("fashion-mnist", "fashion-mnist-loc", "digits", "imagefolder", "cifar10", "cifar100")
MIXABLE = ("mixup", "cutmix", "cutout", "resizemix", "fmix", "saliencymix", "gridmix", "mosaic")
METHODS = ("none", *MIXABLE, "mix")
#: The methods whose λ is drawn from Beta(α, α), the ones ``--alpha`` sets.
BETA_METHODS = ("mixup", "cutmix", "fmix", "saliencymix", "gridmix")
MODELS = ("small-resnet", "resnet18", "resnet50")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "constant")
MIX_MODES = ("batch", "pair", "sample")

#: Fields that may differ between a run and its resumption: where it runs and what it shows,
#: not what it computes. (The number of DataLoader workers is not among them: each worker
#: draws its own stream, so it changes the mix's draws.)
RUNTIME_FIELDS = frozenset({"out", "data_dir", "device", "progress", "download", "lazy_images"})


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise AppError(f"unknown {name} {value!r}; expected one of: {', '.join(choices)}.")


def parse_mix_weights(text: str) -> tuple[tuple[str, float], ...]:
    """Parses ``"mixup=0.5,cutmix=0.5"`` into ``(("mixup", 0.5), ("cutmix", 0.5))``."""
    pairs: list[tuple[str, float]] = []
    for item in text.split(","):
        name, sep, weight = item.strip().partition("=")
        if not sep:
            raise AppError(
                f"--mix-weights: expected METHOD=WEIGHT pairs such as mixup=0.5,cutmix=0.5, "
                f"got {item.strip()!r}."
            )
        _choice("method in --mix-weights", name.strip(), MIXABLE)
        try:
            value = float(weight)
        except ValueError:
            raise AppError(
                f"--mix-weights: expected a number after {name}=, got {weight!r}."
            ) from None
        if not (value >= 0 and math.isfinite(value)):
            raise AppError(
                f"--mix-weights: expected a finite weight >= 0 for {name}, got {weight!r}."
            )
        pairs.append((name.strip(), value))
    if len({name for name, _ in pairs}) != len(pairs):
        raise AppError(f"--mix-weights: each method may appear once, got {text!r}.")
    if sum(weight for _, weight in pairs) <= 0:
        raise AppError(f"--mix-weights: expected a positive total weight, got {text!r}.")
    return tuple(pairs)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    ``epochs`` count full passes over the (sub)set; ``batch_size`` is per process under
    ``torchrun``. ``mix_off_epoch`` = N trains the first N epochs with mixing and the rest
    without (0: mix throughout), like timm's ``mixup_off_epoch``.
    """

    data: str = "fashion-mnist"
    data_dir: str | None = None
    image_size: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    skip_bad_images: bool = False
    lazy_images: bool = False
    download: bool = True
    model: str = "small-resnet"
    width: int = 32
    method: str = "none"
    alpha: float = 1.0
    mix_prob: float = 1.0
    mix_mode: str = "batch"
    label_smoothing: float = 0.0
    cutout_size: int | None = None
    mix_weights: tuple[tuple[str, float], ...] = (("mixup", 0.5), ("cutmix", 0.5))
    mix_off_epoch: int = 0
    augment: bool = True
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    progress: bool = True
    out: str = "out/train"

    def __post_init__(self) -> None:
        _choice("dataset", self.data, DATASETS)
        _choice("model", self.model, MODELS)
        _choice("method", self.method, METHODS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("mix mode", self.mix_mode, MIX_MODES)
        index = self.device.removeprefix("cuda:")
        if self.device not in ("auto", "cpu", "cuda") and not (
            self.device.startswith("cuda:") and index.isascii() and index.isdigit()
        ):
            raise AppError(f"unknown device {self.device!r}; expected auto, cpu, cuda or cuda:N.")
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "width": self.width,
            "image_size": self.image_size,
            "train_subset": self.train_subset,
            "test_subset": self.test_subset,
            "cutout_size": self.cutout_size,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise AppError(
                    f"--{name.replace('_', '-')}: expected a positive number, got {value}."
                )
        if self.workers < 0 or self.mix_off_epoch < 0:
            raise AppError("--workers and --mix-off-epoch: expected numbers >= 0.")
        if not 0 <= self.seed < 2**63:
            raise AppError(f"--seed: expected an integer in [0, 2**63), got {self.seed}.")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise AppError(f"--alpha: expected a finite number > 0, got {self.alpha}.")
        if not 0 <= self.mix_prob <= 1:
            raise AppError(f"--mix-prob: expected a probability in [0, 1], got {self.mix_prob}.")
        if not 0 <= self.label_smoothing < 1:
            raise AppError(
                f"--label-smoothing: expected a number in [0, 1), got {self.label_smoothing}."
            )
        finite = math.isfinite(self.lr) and math.isfinite(self.weight_decay)
        if not finite or not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise AppError(
                f"expected finite --lr > 0 and --weight-decay >= 0, and --momentum in [0, 1), "
                f"got {self.lr}, {self.weight_decay} and {self.momentum}."
            )
        weights = [w for _, w in self.mix_weights]
        if not all(w >= 0 and math.isfinite(w) for w in weights) or not sum(weights) > 0:
            raise AppError(
                f"--mix-weights: expected finite weights >= 0 with a positive total, got "
                f"{list(self.mix_weights)}."
            )
        methods = [name for name, _ in self.mix_weights] if self.method == "mix" else [self.method]
        if self.mix_mode == "pair" and "mosaic" in methods:
            raise AppError(
                "--mix-mode pair: expected methods that mix pairs of samples; Mosaic takes three "
                "partners per sample (use --mix-mode batch or sample)."
            )
        if self.data == "imagefolder" and not self.data_dir:
            raise AppError("--data imagefolder needs --data-dir pointing at the image folder.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-friendly values (``mix_weights`` as a list of pairs)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["mix_weights"] = [list(pair) for pair in self.mix_weights]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a checkpoint from elsewhere)."""
        if not isinstance(values, dict):
            raise AppError(
                f"expected the saved configuration to be a mapping of settings, got "
                f"{type(values).__name__}."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise AppError(f"unknown settings {sorted(unknown)} in a saved configuration.")
        values = dict(values)
        if "mix_weights" in values:
            values["mix_weights"] = tuple((str(n), float(w)) for n, w in values["mix_weights"])
        return cls(**values)

    def unused_options(self, methods: Sequence[str], *, grid: bool = False) -> list[str]:
        """Settings given away from their defaults that none of ``methods`` (the methods of a
        run or a comparison) or the optimiser uses, each with what it would need; ``grid``: a
        comparison's report draws a CutOut column, which uses ``cutout_size``."""
        default = TrainConfig()
        mixers = set(methods) - {"none", "mix"}
        if "mix" in methods:  # the methods it may draw
            mixers |= {name for name, weight in self.mix_weights if weight > 0}
        notes = []
        if not mixers:
            given = [
                f"--{name.replace('_', '-')}"
                for name in ("alpha", "mix_prob", "mix_mode", "mix_off_epoch")
                if getattr(self, name) != getattr(default, name)
            ]
            if given:
                notes.append(f"{', '.join(given)}: no mixing method is used")
        elif self.alpha != default.alpha and not mixers & set(BETA_METHODS):
            notes.append(
                "--alpha: none of the methods used draws λ from Beta(α, α) (only "
                f"{', '.join(BETA_METHODS)} do)"
            )
        if mixers == {"cutout"} and self.mix_mode != default.mix_mode:
            notes.append("--mix-mode: CutOut draws a box for every sample in any mode")
        if self.cutout_size is not None and "cutout" not in mixers and not grid:
            notes.append("--cutout-size: only CutOut uses it, and no run uses CutOut")
        if self.mix_weights != default.mix_weights and "mix" not in methods:
            notes.append("--mix-weights: only --method mix uses it")
        if self.optimizer == "adamw" and (self.momentum != default.momentum or self.nesterov):
            notes.append("--momentum and --nesterov: only --optimizer sgd uses them")
        elif self.nesterov and self.momentum == 0:
            notes.append("--nesterov: it needs --momentum above 0")
        if self.width != default.width and self.model != "small-resnet":
            notes.append(f"--width: only small-resnet uses it, not {self.model}")
        for option in ("skip_bad_images", "lazy_images"):
            if getattr(self, option) and self.data != "imagefolder":
                flag = "--" + option.replace("_", "-")
                notes.append(f"{flag}: only --data imagefolder uses it, not {self.data}")
        if mixers and self.mix_off_epoch >= self.epochs:
            notes.append(
                f"--mix-off-epoch {self.mix_off_epoch}: mixing is never switched off in "
                f"{self.epochs} epochs"
            )
        return notes

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the settings (other than runtime ones) in which two configs differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k]]

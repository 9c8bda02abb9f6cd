"""Training runs: tiny end-to-end runs, resume equals uninterrupted, output-folder safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from app_helpers import TINY

import batchmix
from batchmix.app import data as app_data
from batchmix.app import train as app_train
from batchmix.app.checkpoint import load_checkpoint
from batchmix.app.config import METHODS, TrainConfig
from batchmix.app.errors import AppError
from batchmix.app.train import build_mixer, train


def tiny(out: Path, **changes: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "data": "digits",
        "width": 8,
        "batch_size": 64,
        "epochs": 3,
        "progress": False,
        "out": str(out),
    }
    values.update(changes)
    return TrainConfig(**values)


def assert_same_state(first: Path, second: Path) -> None:
    a, b = load_checkpoint(first), load_checkpoint(second)
    assert a["epoch"] == b["epoch"]
    for name, tensor in a["model_state"].items():
        assert torch.equal(tensor, b["model_state"][name]), name
    for key, state in a["optimizer_state"]["state"].items():
        assert torch.equal(
            state["momentum_buffer"], b["optimizer_state"]["state"][key]["momentum_buffer"]
        )
    assert a["scheduler_state"]["last_epoch"] == b["scheduler_state"]["last_epoch"]


def read_metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


class Interrupted(Exception):
    pass


def interrupt_after_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Makes the next training stop right after writing the checkpoint of ``epoch``."""
    real = app_train.save_atomic

    def save_then_stop(payload: dict[str, Any], path: Path) -> None:
        real(payload, path)
        if payload["epoch"] == epoch:
            raise Interrupted

    monkeypatch.setattr(app_train, "save_atomic", save_then_stop)


def _image_folder(root: Path) -> Path:
    """``root/{train,test}/{a,b}/*.png``: eight small images per split, a class per colour."""
    from PIL import Image

    for split in ("train", "test"):
        for name, colour in (("a", (220, 30, 30)), ("b", (30, 30, 220))):
            (root / split / name).mkdir(parents=True)
            for k in range(4):
                shade = tuple(max(0, c - 20 * k) for c in colour)
                Image.new("RGB", (16, 14), shade).save(root / split / name / f"{k}.png")
    return root


class TestRun:
    def test_tiny_run_writes_metrics_and_checkpoint(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        out = tmp_path / "run"
        result = cli("train", *TINY, "--method", "cutmix", "--epochs", "2", "--out", str(out))
        assert result.code == 0, result.err
        assert sorted(p.name for p in out.iterdir()) == [
            ".batchmix.lock",
            "checkpoint.pt",
            "config.json",
            "metrics.jsonl",
            "summary.json",
        ]
        lines = read_metrics(out)
        assert [line["epoch"] for line in lines] == [1, 2]
        for line in lines:
            assert {"train_loss", "test_top1", "test_top5", "test_error", "images_per_s"} <= set(
                line
            )
            assert line["images_per_s"] > 0 and line["mixing"] is True
        checkpoint = load_checkpoint(out)
        assert checkpoint["epoch"] == 2
        assert {"torch", "numpy", "python"} <= set(checkpoint["rng"])
        assert checkpoint["config"]["method"] == "cutmix"
        assert "test top-1 error" in result.out

    @pytest.mark.parametrize("method", METHODS)
    def test_every_method_trains(self, method: str, tmp_path: Path) -> None:
        summary = train(
            tiny(tmp_path, method=method, epochs=1, label_smoothing=0.1, mix_mode="sample")
        )
        assert summary["final"]["train_loss"] > 0

    @pytest.mark.parametrize(
        "changes",
        [
            {"optimizer": "adamw", "lr": 0.003, "schedule": "onecycle"},
            {"nesterov": True, "schedule": "constant"},
        ],
        ids=["adamw-onecycle", "nesterov-constant"],
    )
    def test_optimisers_and_schedules(self, changes: dict[str, Any], tmp_path: Path) -> None:
        summary = train(tiny(tmp_path, epochs=1, **changes))
        assert summary["final"]["test_top1"] > 0

    def test_mix_off_epoch(self, tmp_path: Path) -> None:
        train(tiny(tmp_path, method="mixup", mix_off_epoch=2))
        assert [line["mixing"] for line in read_metrics(tmp_path)] == [True, True, False]

    def test_mixer_matches_options(self) -> None:
        config = TrainConfig(
            method="mix", mix_weights=(("mixup", 1.0), ("cutout", 3.0)), cutout_size=5
        )
        mixer = build_mixer(config, 10, 28)
        assert isinstance(mixer, batchmix.RandomMix) and mixer.p == [0.25, 0.75]
        assert isinstance(mixer.transforms[1], batchmix.CutOut) and mixer.transforms[1].size == 5

    def test_pair_mode(self, tmp_path: Path, cli: Callable[..., Any]) -> None:
        names = ("mixup", "cutmix", "resizemix", "fmix", "gridmix", "saliencymix", "cutout")
        config = TrainConfig(
            method="mix", mix_mode="pair", mix_weights=tuple((n, 1.0) for n in names)
        )
        mixer = build_mixer(config, 10, 28)
        assert isinstance(mixer, batchmix.RandomMix) and mixer.mode == "pair"
        for member in mixer.transforms[:-1]:
            assert (member.mode, member.partner) == ("pair", "flip")
        with pytest.raises(AppError, match="--mix-mode pair: expected methods that mix pairs"):
            TrainConfig(method="mosaic", mix_mode="pair")
        out = tmp_path / "pair"
        result = cli(
            "train",
            *TINY,
            "--epochs",
            "1",
            "--method",
            "cutmix",
            "--mix-mode",
            "pair",
            "--out",
            str(out),
        )
        assert result.code == 0, result.err
        assert load_checkpoint(out)["config"]["mix_mode"] == "pair"


class TestOutputFolder:
    def test_refuses_a_folder_holding_a_run(self, tmp_path: Path, cli: Callable[..., Any]) -> None:
        out = tmp_path / "run"
        assert cli("train", *TINY, "--epochs", "1", "--out", str(out)).code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        result = cli("train", *TINY, "--epochs", "1", "--out", str(out))
        assert result.code == 2
        assert (
            "already holds a run" in result.err
            and "--resume" in result.err
            and "--overwrite" in result.err
        )
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    def test_overwrite_replaces(self, tmp_path: Path, cli: Callable[..., Any]) -> None:
        out = tmp_path / "run"
        assert cli("train", *TINY, "--epochs", "2", "--out", str(out)).code == 0
        assert cli("train", *TINY, "--epochs", "1", "--out", str(out), "--overwrite").code == 0
        assert len(read_metrics(out)) == 1

    def test_resume_and_overwrite_exclude_each_other(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        result = cli("train", *TINY, "--out", str(tmp_path), "--resume", "--overwrite")
        assert result.code == 2 and "exclude each other" in result.err

    def test_resume_with_changed_options_is_refused(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        assert cli("train", *TINY, "--epochs", "1", "--out", str(tmp_path)).code == 0
        result = cli(
            "train", *TINY, "--epochs", "1", "--lr", "0.5", "--out", str(tmp_path), "--resume"
        )
        assert result.code == 2 and "lr: saved 0.1, given 0.5" in result.err

    def test_failed_start_leaves_the_folder_alone(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        out = tmp_path / "run"
        assert cli("train", *TINY, "--epochs", "1", "--out", str(out)).code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        # --overwrite is allowed, but the data cannot be found: nothing may be deleted.
        result = cli(
            "train",
            "--data",
            "imagefolder",
            "--data-dir",
            str(tmp_path / "none"),
            "--out",
            str(out),
            "--overwrite",
        )
        assert result.code == 2
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    def test_resume_without_a_checkpoint_keeps_a_run_with_epochs(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        out = tmp_path / "run"
        assert cli("train", *TINY, "--epochs", "2", "--out", str(out)).code == 0
        (out / "checkpoint.pt").unlink()
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        result = cli("train", *TINY, "--epochs", "1", "--out", str(out), "--resume")
        assert result.code == 2 and "records 2 completed epoch(s)" in result.err, result.err
        assert "--overwrite" in result.err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    def test_resume_without_a_checkpoint_or_epochs_checks_the_settings(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        # A run killed in its first epoch: config.json and an empty metrics.jsonl.
        out = tmp_path / "run"
        out.mkdir()
        (out / "config.json").write_text(json.dumps(tiny(out, epochs=1).to_dict()))
        (out / "metrics.jsonl").write_text("")
        result = cli("train", *TINY, "--epochs", "1", "--lr", "0.5", "--out", str(out), "--resume")
        assert result.code == 2 and "lr: saved 0.1, given 0.5" in result.err
        assert (out / "config.json").exists() and not (out / "checkpoint.pt").exists()
        result = cli("train", *TINY, "--epochs", "1", "--out", str(out), "--resume")
        assert result.code == 0, result.err
        assert len(read_metrics(out)) == 1

    @pytest.mark.parametrize(
        "argv, message",
        [
            (["--seed", "-1"], "--seed: expected an integer in [0, 2**63)"),
            (["--seed", str(2**64)], "--seed: expected an integer in [0, 2**63)"),
            (["--alpha", "inf", "--method", "mixup"], "--alpha: expected a finite number > 0"),
            (["--lr", "inf"], "expected finite --lr > 0"),
            (["--weight-decay", "nan"], "expected finite --lr > 0 and --weight-decay >= 0"),
            (
                ["--method", "mix", "--mix-weights", "mixup=inf"],
                "--mix-weights: expected a finite weight >= 0 for mixup",
            ),
        ],
    )
    def test_bad_numbers_are_refused_before_the_folder_is_touched(
        self, argv: list[str], message: str, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        out = tmp_path / "run"
        assert cli("train", *TINY, "--epochs", "1", "--out", str(out)).code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        result = cli("train", *TINY, "--epochs", "1", *argv, "--out", str(out), "--overwrite")
        assert result.code == 2 and message in result.err, result.err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


class TestResume:
    def test_resume_with_another_number_of_processes_is_refused(self, tmp_path: Path) -> None:
        train(tiny(tmp_path, epochs=2))
        payload = load_checkpoint(tmp_path)
        payload["world"] = 2  # as saved by a two-process torchrun
        torch.save(payload, tmp_path / "checkpoint.pt")
        with pytest.raises(AppError, match=r"trained on 2 process\(es\), this command runs 1"):
            train(tiny(tmp_path, epochs=2), resume=True)

    def test_resume_with_other_workers_is_refused_and_threads_warned(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        train(tiny(tmp_path, epochs=1, method="mixup"))
        with pytest.raises(AppError, match="workers: saved 0, given 2"):
            train(tiny(tmp_path, epochs=1, method="mixup", workers=2), resume=True)
        threads = torch.get_num_threads()
        payload = load_checkpoint(tmp_path)
        assert payload["threads"] == threads and payload["world"] == 1
        payload["threads"] = threads + 1
        torch.save(payload, tmp_path / "checkpoint.pt")
        train(tiny(tmp_path, epochs=1, method="mixup"), resume=True)
        assert f"trained with {threads + 1} CPU thread(s)" in capsys.readouterr().err

    def test_image_size_given_as_the_default_and_relative_data_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        train(tiny(tmp_path, epochs=1))
        train(tiny(tmp_path, epochs=1, image_size=8), resume=True)  # digits are 8 px: the same
        assert len(read_metrics(tmp_path)) == 1
        monkeypatch.chdir(tmp_path)
        run = tmp_path / "relative-run"
        train(tiny(run, epochs=1, data_dir="images"))  # digits ignore the folder; it is saved
        assert json.loads((run / "config.json").read_text())["data_dir"] == str(tmp_path / "images")
        assert load_checkpoint(run)["config"]["data_dir"] == str(tmp_path / "images")

    def test_metrics_rewrite_at_resume_is_atomic(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        train(tiny(tmp_path, epochs=2))
        lines = (tmp_path / "metrics.jsonl").read_text()
        real_replace = os.replace

        def killed(source: Any, target: Any) -> None:
            if str(target).endswith("metrics.jsonl"):
                raise Interrupted  # a kill between writing the new lines and renaming them
            real_replace(source, target)

        monkeypatch.setattr(app_train.os, "replace", killed)
        with pytest.raises(Interrupted):
            train(tiny(tmp_path, epochs=2), resume=True)
        assert (tmp_path / "metrics.jsonl").read_text() == lines

    @pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "two-workers"])
    def test_resume_equals_uninterrupted(
        self, workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        method = "mix" if workers else "cutmix"
        whole = tiny(tmp_path / "whole", method=method, workers=workers, mix_mode="sample")
        train(whole)
        parts = tiny(tmp_path / "parts", method=method, workers=workers, mix_mode="sample")
        with monkeypatch.context() as patch:
            interrupt_after_epoch(patch, 1)
            with pytest.raises(Interrupted):
                train(parts)
        assert load_checkpoint(tmp_path / "parts")["epoch"] == 1
        torch.manual_seed(12345)  # whatever happened in between must not matter
        train(parts, resume=True)
        assert_same_state(tmp_path / "whole", tmp_path / "parts")
        whole_lines, part_lines = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "parts")
        assert [line["epoch"] for line in part_lines] == [1, 2, 3]
        for a, b in zip(whole_lines, part_lines, strict=True):
            assert a["test_loss"] == b["test_loss"] and a["train_loss"] == b["train_loss"]

    def test_lazy_images_resume_in_memory_as_if_never_interrupted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        folder = _image_folder(tmp_path / "images")

        def config(out: str, lazy: bool) -> TrainConfig:
            return tiny(
                tmp_path / out,
                data="imagefolder",
                data_dir=str(folder),
                image_size=12,
                width=4,
                batch_size=4,
                epochs=2,
                method="cutmix",
                workers=1,
                lazy_images=lazy,
            )

        train(config("whole", lazy=True))
        with monkeypatch.context() as patch:
            interrupt_after_epoch(patch, 1)
            with pytest.raises(Interrupted):
                train(config("parts", lazy=True))
        train(config("parts", lazy=False), resume=True)  # the second epoch from memory
        assert_same_state(tmp_path / "whole", tmp_path / "parts")
        whole_lines, part_lines = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "parts")
        for a, b in zip(whole_lines, part_lines, strict=True):
            assert a["test_loss"] == b["test_loss"] and a["train_loss"] == b["train_loss"]

    def test_an_undecodable_lazy_image_stops_training_naming_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Any]
    ) -> None:
        from PIL import Image

        folder = _image_folder(tmp_path / "images")
        cut = folder / "train" / "b" / "cut.jpg"
        noise = torch.randint(0, 256, (40, 50, 3), generator=torch.Generator().manual_seed(0))
        Image.fromarray(noise.to(torch.uint8).numpy()).save(cut)
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # opens, does not decode
        monkeypatch.setattr(app_data, "STATS_IMAGES", 2)  # so that training is first to read it
        options = ("--data", "imagefolder", "--data-dir", folder, "--image-size", "12")
        options += ("--width", "4", "--batch-size", "4", "--no-progress", "--lazy-images")
        result = cli("train", *options, "--workers", "1", "--out", tmp_path / "run")
        assert result.code == 2
        assert result.err.startswith(f"batchmix: error: {cut} could not be decoded (OSError")
        assert result.err.rstrip().endswith(
            "Epoch 1 stopped there; no epoch had finished, and --resume starts the run again."
        )
        assert "Traceback" not in result.err

    def test_an_undecodable_lazy_test_image_stops_the_evaluation_naming_it(
        self, tmp_path: Path, cli: Callable[..., Any]
    ) -> None:
        from PIL import Image

        folder = _image_folder(tmp_path / "images")
        cut = folder / "test" / "a" / "cut.jpg"
        noise = torch.randint(0, 256, (40, 50, 3), generator=torch.Generator().manual_seed(0))
        Image.fromarray(noise.to(torch.uint8).numpy()).save(cut)
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
        options = ("--data", "imagefolder", "--data-dir", folder, "--image-size", "12")
        options += ("--width", "4", "--batch-size", "4", "--no-progress", "--lazy-images")
        result = cli("train", *options, "--epochs", "2", "--out", tmp_path / "run")
        assert result.code == 2
        assert result.err.startswith(f"batchmix: error: {cut} could not be decoded (OSError")
        assert result.err.rstrip().endswith(
            "The evaluation after epoch 1 stopped there; no epoch had finished, and --resume "
            "starts the run again."
        )

    def test_resume_of_a_finished_run_changes_nothing(self, tmp_path: Path) -> None:
        train(tiny(tmp_path, epochs=1))
        before = (tmp_path / "checkpoint.pt").read_bytes()
        summary = train(tiny(tmp_path, epochs=1), resume=True)
        assert summary["final"]["epoch"] == 1
        assert (tmp_path / "checkpoint.pt").read_bytes() == before

    def test_same_seed_same_weights_other_seed_differs(self, tmp_path: Path) -> None:
        for name, seed in (("a", 0), ("b", 0), ("c", 1)):
            train(tiny(tmp_path / name, epochs=1, method="mixup", seed=seed))
        assert_same_state(tmp_path / "a", tmp_path / "b")
        with pytest.raises(AssertionError):
            assert_same_state(tmp_path / "a", tmp_path / "c")

    @pytest.mark.slow
    def test_killed_process_resumes_to_the_same_weights(self, tmp_path: Path) -> None:
        args = [*TINY, "--method", "cutmix", "--epochs", "6", "--image-size", "24"]
        command = [sys.executable, "-m", "batchmix", "train", *args]
        subprocess.run(
            [*command, "--out", str(tmp_path / "whole")],
            check=True,
            capture_output=True,
            timeout=300,
        )
        killed = tmp_path / "killed"
        process = subprocess.Popen(
            [*command, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 240
        metrics = killed / "metrics.jsonl"
        # Kill it as soon as epoch 2 is logged: during epoch 2's checkpoint write or epoch 3.
        while time.monotonic() < deadline and (
            not metrics.exists() or len(metrics.read_text().splitlines()) < 2
        ):
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        interrupted_at = load_checkpoint(killed)["epoch"]
        subprocess.run(
            [*command, "--out", str(killed), "--resume"],
            check=True,
            capture_output=True,
            timeout=300,
        )
        assert_same_state(tmp_path / "whole", killed)
        assert [line["epoch"] for line in read_metrics(killed)] == [1, 2, 3, 4, 5, 6]
        assert 1 <= interrupted_at < 6


def test_one_named_gpu_under_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every rank would take cuda:1 while the process group expects one GPU per local rank.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(AppError, match=r"--device cuda:1 names one GPU.*pass --device cuda"):
        app_train._start_processes("cuda:1")


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_more_processes_per_node_than_gpus_is_refused(
    device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Local rank 2 would take cuda:2 on a node with two GPUs: refused before the process group.
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    def no_group(*args: object, **kwargs: object) -> None:
        raise AssertionError("the process group was joined before the check")

    monkeypatch.setattr(torch.distributed, "init_process_group", no_group)
    monkeypatch.setattr(torch.cuda, "set_device", no_group)
    with pytest.raises(AppError, match=r"local rank 2 .* torch sees 2 GPU\(s\) .*--device cpu"):
        app_train._start_processes(device)


def test_an_output_that_cannot_be_a_folder_is_refused_before_the_data_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "taken").write_text("a file")

    def no_data(config: TrainConfig) -> None:
        raise AssertionError("the data was loaded before the output folder was checked")

    monkeypatch.setattr(app_train, "load_data", no_data)
    with pytest.raises(AppError, match=r"expected a folder, but .*taken is not one"):
        train(tiny(tmp_path / "taken" / "run"))


def test_a_run_folder_in_use_by_another_process_is_refused(tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    (out / app_train.LOCK_NAME).write_text("4242\n")
    with open(out / app_train.LOCK_NAME, "r+") as held:  # another process writing this run
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(AppError, match=r"in use by another batchmix process \(pid 4242\)"):
            train(tiny(out, epochs=1))
        assert sorted(p.name for p in out.iterdir()) == [app_train.LOCK_NAME]
    summary = train(tiny(out, epochs=1))  # once it has ended, the folder is free
    assert summary["final"] and (out / "summary.json").exists()
    with open(out / app_train.LOCK_NAME, "r+") as after:  # released when train returned
        fcntl.flock(after, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize(
    ("device", "message"),
    [("cuda:x", "unknown device 'cuda:x'; expected auto, cpu, cuda or cuda:N"), ("cuda:99", "GPU")],
)
def test_gpu_index_is_checked(
    device: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AppError, match=message):
        train(tiny(tmp_path / "run", epochs=1, device=device))
    assert not (tmp_path / "run").exists()
    if torch.cuda.is_available():
        return
    with pytest.raises(AppError, match=r"names GPU 0, but torch sees no GPU"):
        app_train._check_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(AppError, match=r"names GPU 2, but torch sees GPUs 0 to 1"):
        app_train._check_device("cuda:2")
    assert app_train._check_device("cuda:1") == 1


def test_a_file_system_that_cannot_lock_warns_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import fcntl

    def no_flock(*args: Any) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.warns(UserWarning, match=r"cannot lock .*\.batchmix\.lock \(Function not impl"):
        summary = train(tiny(tmp_path / "run", epochs=1))
    assert summary["final"]


def test_forked_workers_do_not_keep_the_lock(tmp_path: Path) -> None:
    import fcntl
    import multiprocessing

    out = tmp_path / "run"
    out.mkdir()
    with app_train._RunLock() as lock:
        assert lock.acquire(out) is None
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
        child.start()  # as a DataLoader worker is
    try:
        with open(out / app_train.LOCK_NAME, "r+") as again:  # free once the parent let go
            for _ in range(100):  # (the child closes its copy as soon as it runs)
                try:
                    fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.05)
            else:
                raise AssertionError("the forked child kept the run's lock")
    finally:
        child.terminate()
        child.join()

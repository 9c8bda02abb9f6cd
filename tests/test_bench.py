"""Smoke test of benchmarks/bench_mix.py at tiny sizes: it runs and reports sane fields.

No timing is asserted: the benchmark's ratios are read by people, not checked by tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_mix.py"
KEYS = ("op", "library", "dtype", "batch", "size", "path", "mode", "device", "status")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_mix", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_mix"] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


def _tiny(**changes: Any) -> Any:
    config = bench.Config(
        shapes=((4, 16),),
        rounds=1,
        budget_s=0.001,
        memory=False,
        loader_images=8,
        loader_size=16,
        loader_batch=4,
        loader_workers=0,
        loader_rounds=1,
    )
    return bench.replace(config, **changes)


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    out: dict[str, Any] = bench.run(_tiny(), log=lambda _: None)
    return out


class TestBenchmark:
    def test_rows_have_the_fields(self, result: dict[str, Any]) -> None:
        rows = result["rows"]
        assert rows
        for row in rows:
            assert all(key in row for key in KEYS), row
            if row["status"] == "ok":
                assert row["ms"] > 0 and row["images_per_s"] > 0
                assert row["ms_min"] <= row["ms"] <= row["ms_max"]
            else:
                assert row.get("ms") is None
                assert row["status"].startswith(("unsupported", "n/a"))

    def test_covers_every_candidate(self, result: dict[str, Any]) -> None:
        seen = {(r["op"], r["library"], r["dtype"], r["path"], r["mode"]) for r in result["rows"]}
        for op in ("cutmix", "mixup"):
            for dtype in ("float32", "uint8"):
                for path in ("inplace", "out-of-place"):
                    for mode in ("batch", "sample"):
                        assert (op, "batchmix", dtype, path, mode) in seen
                        if op == "cutmix" and path == "inplace":  # a floor per mode's area
                            assert (op, "floor", dtype, path, mode) in seen
                    if not (op == "cutmix" and path == "inplace"):
                        assert (op, "floor", dtype, path, "-") in seen
                assert (op, "torchvision", dtype, "out-of-place", "batch") in seen
        assert ("cutout", "batchmix", "uint8", "inplace", "sample") in seen
        # Box floors are timed two ways, torch's strided ops and a compiled row loop, on the
        # draws' own boxes, and both ways on a centred box for reference.
        variants = {
            r["variant"] for r in result["rows"] if r["library"] == "floor" and r["op"] == "cutout"
        }
        assert variants == {"torch", "loop", "centred torch", "centred loop"}

    def test_batchmix_rows_have_ratios(self, result: dict[str, Any]) -> None:
        rows = result["rows"]
        for row in rows:
            if row["library"] != "batchmix":
                continue
            assert row["ratio_to_floor"] > 0
            assert row["floor_ms"] > 0 and row["floor"]
            # The floor compared with is the faster variant of the row's own path and mode.
            floors = [
                f["ms"]
                for f in rows
                if f["library"] == "floor"
                and (f["op"], f["dtype"], f["path"]) == (row["op"], row["dtype"], row["path"])
                and f["mode"] in (row["mode"], "-")
                and f.get("ms") is not None
                and not f["variant"].startswith("centred")
            ]
            assert row["floor_ms"] == min(floors)
            if row["op"] != "mixup" and row["path"] == "inplace":
                assert row["centred_floor_ms"] > 0 and row["ratio_to_centred_floor"] > 0
            else:
                assert "centred_floor_ms" not in row
            # torchvision like for like: its in-place CutOut against batchmix's in-place one.
            if row["op"] == "cutout":
                assert row["torchvision_path"] == row["path"]
            elif row.get("torchvision_over_batchmix") is not None:
                assert row["torchvision_path"] == "out-of-place"
            if not (row["op"] == "mixup" and row["dtype"] == "uint8"):
                assert row["torchvision_over_batchmix"] > 0
            if row["mode"] == "sample" and row["op"] != "cutout":
                assert row["sample_over_batch"] > 0

    def test_unsupported_references_are_recorded(self, result: dict[str, Any]) -> None:
        by_key = {(r["op"], r["library"], r["dtype"], r["mode"]): r for r in result["rows"]}
        assert by_key[("mixup", "torchvision", "uint8", "batch")]["status"].startswith(
            "unsupported"
        )
        assert by_key[("mixup", "timm", "float32", "elem")]["status"] == "ok"
        # timm is tried on uint8 too (its CutMix copies boxes of any dtype).
        assert by_key[("cutmix", "timm", "uint8", "batch")]["status"] == "ok"

    def test_box_areas_are_fractions(self, result: dict[str, Any]) -> None:
        for row in result["rows"]:
            if row["op"] in ("cutmix", "cutout"):
                assert 0.0 < row["box_area_fraction"] <= 1.0
                assert 0.0 < row["floor_area_fraction"] <= 1.0

    def test_floor_areas_are_the_mean_of_the_timed_draws(self, result: dict[str, Any]) -> None:
        import batchmix

        for row in result["rows"]:
            if row["library"] == "batchmix" and row["op"] == "cutmix" and row["path"] == "inplace":
                assert row["calls"] == bench.MAX_CALLS  # every pinned seed
                transform = batchmix.CutMix(num_classes=bench.NUM_CLASSES, mode=row["mode"])
                area = bench.mean_box_area(transform, row["batch"], row["size"], row["size"])
                assert row["box_area_fraction"] == pytest.approx(area, abs=1e-4)

    def test_in_place_candidates_write_into_their_batch(self) -> None:
        x, y, work, buf = bench.build_inputs("cpu", torch.float32, 4, 16)
        cands, _ = bench.build_candidates("cutmix", x, y, work, buf)
        before = work.clone()
        for cand in cands:
            if cand.library == "batchmix" and cand.path == "inplace":
                bench._seed(1)
                cand.call()
        assert not torch.equal(work, before) and torch.equal(x, before)

    @pytest.mark.parametrize(
        ("op", "mode"), [("cutmix", "batch"), ("cutmix", "sample"), ("cutout", "sample")]
    )
    @pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
    def test_box_floors_move_the_bytes_of_the_timed_draws(
        self, op: str, mode: str, dtype: torch.dtype
    ) -> None:
        # The k-th call of a box floor writes the boxes that batchmix's k-th in-place call
        # writes (seed k), no more and no fewer, within one batch as batchmix does, and its
        # loop copies each box from the partner batchmix uses.
        import batchmix

        batch, side = 6, 24
        x, y, work, buf = bench.build_inputs("cpu", dtype, batch, side)
        for i in range(batch):  # every sample one value of its own: any write from another shows
            x[i] = i + 1
        cands, _ = bench.build_candidates(op, x, y, work, buf)
        ours = next(
            c for c in cands if (c.library, c.path, c.mode) == ("batchmix", "inplace", mode)
        )
        floors = {
            c.variant: c
            for c in cands
            if (c.library, c.path, c.mode) == ("floor", "inplace", mode)
            and not c.variant.startswith("centred")
        }
        assert set(floors) == {"torch", "loop"}
        transform = (
            batchmix.CutOut(size=bench._cutout_size(side))
            if op == "cutout"
            else batchmix.CutMix(num_classes=bench.NUM_CLASSES, mode=mode)
        )
        draws = bench.pinned_draws(transform, batch, side, side)
        loops = bench._row_loops()
        for k in (0, 5, 15):
            boxes, index = torch.from_numpy(draws[k].boxes), torch.from_numpy(draws[k].index)
            rows, cols = torch.arange(side).view(-1, 1), torch.arange(side).view(1, -1)
            inside = [
                (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
                for x1, y1, x2, y2 in boxes.tolist()
            ]
            mask = torch.stack(inside).unsqueeze(1).expand_as(x)
            assert mask.any() and not mask.all()
            work.copy_(x)
            bench._seed(k)
            assert callable(ours.call)
            ours.call()
            source = torch.zeros_like(x) if op == "cutout" else x[index]
            assert torch.equal(work, torch.where(mask, source, x)), k  # the draw is batchmix's
            # The loop, from a separate source: exactly batchmix's result.
            out = x.clone()
            if op == "cutout":
                loops["fill_boxes"](bench._pixel_view(out), draws[k].boxes, 0)
            else:
                loops["copy_boxes"](
                    bench._pixel_view(x), bench._pixel_view(out), draws[k].index, draws[k].boxes
                )
            assert torch.equal(out, work), k
            # The timed calls work within buf, sample after sample, so a box may come from a
            # partner whose box was written before: the same as doing so step by step here.
            within = x.clone()
            pairs = zip(index.tolist(), boxes.tolist(), strict=True)
            for i, (j, (x1, y1, x2, y2)) in enumerate(pairs):
                part = 0 if op == "cutout" else within[j, :, y1:y2, x1:x2]
                within[i, :, y1:y2, x1:x2] = part
            for variant, floor in floors.items():
                assert isinstance(floor.call, list) and len(floor.call) == bench.MAX_CALLS
                buf.copy_(x)
                floor.call[k]()
                if op == "cutmix" and variant == "torch" and mode == "batch":
                    # One strided copy of each sample's own box, from x: the same bytes moved.
                    assert torch.equal(buf, x)
                else:
                    assert torch.equal(buf, within), (variant, k)

    def test_calls_pair_seed_k_with_the_kth_callable(self) -> None:
        seen: list[tuple[int, int]] = []
        calls = [lambda k=k: seen.append((k, torch.initial_seed())) for k in range(4)]
        bench.time_calls(calls, 4, lambda: None)
        assert seen == [(0, 0), (1, 1), (2, 2), (3, 3)]

    def test_warm_pass_precedes_every_measurement(self) -> None:
        events: list[str] = []

        def candidate(name: str) -> Any:
            cand = bench.Candidate("cutmix", name, "inplace", "-", lambda: events.append(name))
            cand.calls = 2
            return cand

        first, second = candidate("batchmix"), candidate("floor")
        bench.run_rounds([first, second], 2, lambda: None)
        # Each candidate's timed calls come right after its own untimed ones, in every round.
        assert events == ["batchmix"] * 4 + ["floor"] * 4 + ["floor"] * 4 + ["batchmix"] * 4
        assert len(first.times) == len(second.times) == 2

    def test_targets_read_their_rows_the_right_way(self) -> None:
        def row(**values: Any) -> dict[str, Any]:
            base = dict(library="batchmix", ms=1.0, device="cpu", batch=4, size=8, dtype="u8")
            return {**base, **values}

        rows = [
            row(op="cutmix", path="inplace", mode="batch", ratio_to_floor=1.2,
                torchvision_over_batchmix=30.0),
            row(op="cutmix", path="inplace", mode="batch", ratio_to_floor=1.7,
                torchvision_over_batchmix=25.0),
            row(op="cutmix", path="out-of-place", mode="batch", full_size_allocations=2,
                peak_extra_over_batch=0.9, torchvision_over_batchmix=1.9),
        ]  # fmt: skip
        targets = {t["target"]: t for t in bench.evaluate_targets(rows, [])}
        floor = targets["in-place cutmix / floor <= 1.5"]
        assert (floor["worst"], floor["met"]) == (1.7, False)  # the largest ratio
        speed = targets["in-place cutmix: torchvision / batchmix >= 20"]
        assert (speed["worst"], speed["met"]) == (25.0, True)  # the smallest ratio
        allocations = targets["out-of-place: full-size allocations per call <= 1"]
        assert (allocations["worst"], allocations["met"]) == (2, False)
        loss = bench.evaluate_targets(
            [], [dict(mix="cutmix", loss_percent=4.0, batch=4, size=8, workers=2)]
        )
        assert loss[0]["met"] is False  # a positive loss is a loss

    def test_loader_and_targets(self, result: dict[str, Any]) -> None:
        mixes = {r["mix"]: r for r in result["loader"]}
        assert set(mixes) == {"none", "cutmix", "mixup"}
        assert all(r["images_per_s"] > 0 for r in mixes.values())
        assert mixes["none"]["loss_percent"] is None
        assert isinstance(mixes["mixup"]["loss_percent"], float)
        # CPU time per batch: decoding, each collate, and the loss it models.
        assert all(r["collate_ms"] > 0 and r["decode_ms_per_batch"] > 0 for r in mixes.values())
        assert mixes["none"]["modelled_loss_percent"] is None
        for mix in ("cutmix", "mixup"):
            extra = mixes[mix]["collate_ms"] - mixes["none"]["collate_ms"]
            whole = mixes["none"]["decode_ms_per_batch"] + mixes["none"]["collate_ms"] + extra
            assert mixes[mix]["modelled_loss_percent"] == pytest.approx(
                100 * extra / whole, abs=0.1
            )
        assert any("modelled" in t["target"] for t in result["targets"])
        # The same costs for both sample layouts, with batchmix's plain stacking beside them.
        collate = {(r["samples"], r["collate"]): r for r in result["collate"]}
        names = {
            "default_collate",
            "MixCollate(cutmix)",
            "MixCollate(mixup)",
            "MixCollate(stack only)",
        }
        assert set(collate) == {(s, n) for s in ("channels-last", "contiguous") for n in names}
        for (samples, name), row in collate.items():
            assert row["collate_ms"] > 0 and row["in_worker"] is False
            stack = collate[(samples, "MixCollate(stack only)")]["collate_ms"]
            if name in ("MixCollate(cutmix)", "MixCollate(mixup)"):
                assert row["mix_ms_over_stack"] == pytest.approx(
                    row["collate_ms"] - stack, abs=1e-3
                )
            else:
                assert row["mix_ms_over_stack"] is None
        for mix in ("cutmix", "mixup"):
            in_loader = mixes[mix]["modelled_loss_percent"]
            assert (
                collate[("channels-last", f"MixCollate({mix})")]["modelled_loss_percent"]
                == in_loader
            )
        assert result["targets"]
        for target in result["targets"]:
            assert isinstance(target["met"], bool) and target["where"]

    def test_machine_and_report(self, result: dict[str, Any]) -> None:
        machine = result["machine"]
        assert machine["torch"] == torch.__version__ and machine["cpu"] and machine["date"]
        text = bench.report(result)
        assert "batchmix" in text and "targets" in text
        json.dumps(result)


class TestMemory:
    def test_peak_extra_bytes_counts_a_fresh_tensor(self) -> None:
        # As the benchmark measures it: in a fresh process whose big tensors are their own
        # mappings (in this process, freed heap pages of earlier tests would be reused unseen).
        size = 8 << 20
        script = (
            "import sys, torch\n"
            f"sys.path.insert(0, {str(BENCH.parent)!r})\n"
            "import bench_mix\n"
            "torch.ones(size := 4 << 20, dtype=torch.uint8)\n"  # warm the allocator up
            f"print(bench_mix.peak_extra_bytes(lambda: torch.ones({size}, dtype=torch.uint8), 'cpu'))"
        )
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(bench.MMAP_THRESHOLD)}
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        extra = proc.stdout.strip().splitlines()[-1]
        if extra == "None":
            pytest.skip("/proc/self/clear_refs is not writable here")
        assert size * 0.9 <= int(extra) <= size * 1.5

    def test_measure_memory_rows(self) -> None:
        rows = bench.measure_memory(_tiny(ops=("cutout",), dtypes=("float32",)), min_bytes=0)
        assert {r["library"] for r in rows} == {"batchmix", "torchvision"}
        assert all(r["peak_extra_bytes"] is None or r["peak_extra_bytes"] >= 0 for r in rows)

    def test_allocations_are_counted(self) -> None:
        from torchvision.transforms import v2

        import batchmix

        x, y = torch.rand(4, 3, 16, 16), torch.arange(4)
        size = x.numel() * x.element_size()
        assert bench.count_allocations(lambda: batchmix.CutMix(num_classes=10)(x, y), size) == 1
        assert bench.count_allocations(lambda: v2.CutMix(num_classes=10)(x, y), size) == 2
        work = x.clone()
        in_place = batchmix.MixUp(num_classes=10)
        assert bench.count_allocations(lambda: in_place.mix_batch(work, y, inplace=True), size) == 0
        rows = bench.measure_memory(_tiny(ops=("cutmix",), dtypes=("float32",)))
        counts = {(r["library"], r["path"], r["mode"]): r["full_size_allocations"] for r in rows}
        assert counts[("batchmix", "out-of-place", "batch")] == 1
        assert counts[("torchvision", "out-of-place", "batch")] == 2


class TestCommandLine:
    def test_writes_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "bench.json"
        argv = [
            "--out",
            str(out),
            "--device",
            "cpu",
            "--shapes",
            "2x8",
            "--ops",
            "cutout",
            "--dtypes",
            "uint8",
            "--rounds",
            "1",
            "--budget",
            "0.001",
            "--no-memory",
            "--loader-images",
            "0",
        ]
        assert bench.main(argv) == 0
        written = json.loads(out.read_text())
        assert {r["op"] for r in written["rows"]} == {"cutout"}
        assert written["loader"] == []
        assert "targets (issue 4)" in capsys.readouterr().out

    def test_rejects_unknown_op(self) -> None:
        with pytest.raises(SystemExit):
            bench.main(["--ops", "fmix"])

    def test_config_round_trips_through_json(self) -> None:
        config = bench.QUICK
        assert bench.config_from_json(json.dumps(bench.asdict(config))) == config


def test_markdown_table_from_json() -> None:
    spec = importlib.util.spec_from_file_location("bench_table", BENCH.parent / "table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_table"] = module
    spec.loader.exec_module(module)
    data = {
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "torch": "2",
            "torch_threads": 1,
            "date": "2026-11-29T00:00",
        },
        "rows": [
            {
                "library": "batchmix",
                "status": "ok",
                "op": "cutmix",
                "dtype": "float32",
                "batch": 4,
                "size": 8,
                "path": "inplace",
                "mode": "batch",
                "ms": 1.0,
                "ratio_to_floor": 1.2,
                "ratio_to_centred_floor": 1.4,
                "torchvision_over_batchmix": 3.0,
                "timm_over_batchmix": None,
                "peak_extra_over_batch": None,
            },
            {"library": "torchvision", "status": "ok"},
        ],
        "loader": [
            {
                "mix": "none",
                "images_per_s": 10.0,
                "images_per_s_all": [9.0, 10.0],
                "loss_percent": None,
            }
        ],
        "collate": [
            {
                "samples": "contiguous",
                "collate": "MixCollate(mixup)",
                "in_worker": True,
                "batch": 4,
                "collate_ms": 2.5,
                "modelled_loss_percent": -1.25,
                "mix_ms_over_stack": 0.5,
            }
        ],
        "targets": [{"target": "t", "shape": "4x3x8x8", "met": True, "worst": 1.2, "where": "x"}],
    }
    text = module.markdown(data)
    assert "measured in a DataLoader worker" in text
    assert "| contiguous | MixCollate(mixup) | 2.50 | -1.25 | 0.50 |" in text
    assert (
        "| cutmix | float32 | 4×3×8² | inplace | batch | 1.00 | 1.20 | 1.40 | 3.00 | – | – |"
        in text
    )
    assert "| t | 4x3x8x8 | yes | 1.2 | x |" in text
    assert text.count("| cutmix") == 1  # only batchmix rows
    summary = module.summary(data, batch=4, size=8)
    assert "| cutmix | float32 | inplace | 1.00 | 1.20 | 3.00 |" in summary
    assert module.summary(data, batch=64, size=224).count("| cutmix") == 0

"""Turns the benchmark's JSON into the markdown of docs/SPEED.md, or the README's summary.

python benchmarks/table.py out/bench.json > docs/SPEED.md
python benchmarks/table.py out/bench.json --summary   # the table in the README's Speed section
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _thp(machine: dict[str, Any]) -> str:
    """The system's transparent huge page mode and whether batchmix advised its outputs."""
    mode = machine.get("transparent_hugepages") or "unknown"
    advised = machine.get("batchmix_hugepages")
    if advised is None:
        return f"`{mode}`"
    return f"`{mode}` (batchmix's advice {'on' if advised else 'off'})"


def markdown(data: dict[str, Any]) -> str:
    machine = data["machine"]
    lines = [
        "# Speed",
        "",
        f"Measured with `make bench` on {machine['cpu']} ({machine['cores']} cores, shared), "
        f"torch {machine['torch']} with {machine['torch_threads']} intra-op thread(s), "
        f"{machine['date'][:10]}, transparent huge pages {_thp(machine)}. Medians of "
        'interleaved rounds; "× floor" compares with a '
        "preallocated copy of the bytes the operation must touch, moved by torch's strided ops "
        "or a compiled loop, whichever was faster; in place, within one batch and at the places "
        'batchmix\'s own draws put the boxes ("× centred floor": one centred box of their mean '
        "area at every call, copied from another batch, the floor of earlier versions, for "
        "reference; see benchmarks/README.md and the notes below); the "
        "torchvision and timm columns are their time divided by batchmix's, torchvision on the "
        "same path where it has one (CutOut in place: `RandomErasing(inplace=True)`), else out "
        "of place. Only ratios measured in the same run mean anything on a shared machine.",
        "",
        "| op | dtype | batch | path | mode | batchmix ms | × floor | × centred floor "
        "| torchvision ÷ batchmix | timm ÷ batchmix | peak extra memory (batches) |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        if row["library"] != "batchmix" or row["status"] != "ok":
            continue
        lines.append(
            f"| {row['op']} | {row['dtype']} | {row['batch']}×3×{row['size']}² | {row['path']} "
            f"| {row['mode']} | {row['ms']:.2f} | {_f(row.get('ratio_to_floor'))} "
            f"| {_f(row.get('ratio_to_centred_floor'))} "
            f"| {_f(row.get('torchvision_over_batchmix'))} | {_f(row.get('timm_over_batchmix'))} "
            f"| {_f(row.get('peak_extra_over_batch'))} |"
        )
    lines += ["", "DataLoader, 2 workers, uint8 JPEGs, `MixCollate` against `default_collate`:", ""]
    lines += [
        "| mix | images/s (median) | all rounds | loss % | collate ms (CPU) | modelled loss % |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in data["loader"]:
        rounds = ", ".join(f"{v:.0f}" for v in row["images_per_s_all"])
        lines.append(
            f"| {row['mix']} | {row['images_per_s']:.0f} | {rounds} | {_f(row['loss_percent'], 1)} "
            f"| {_f(row.get('collate_ms'))} | {_f(row.get('modelled_loss_percent'))} |"
        )
    decode = [row["decode_ms_per_batch"] for row in data["loader"] if "decode_ms_per_batch" in row]
    if decode:
        lines += [
            "",
            f"Decoding one batch of JPEGs took {decode[0]:.1f} ms of CPU time; the modelled loss is "
            "the extra collate time over a worker's whole time per batch (decoding plus "
            "`default_collate`), the throughput a loader with CPU-bound workers loses.",
        ]
    collate = data.get("collate", [])
    if collate:
        where = "in a DataLoader worker" if collate[0].get("in_worker") else "in one process"
        lines += [
            "",
            f"CPU time of each collate per {collate[0]['batch']}-image batch, measured {where} "
            'on freshly decoded samples; "stack only" is `MixCollate` with mixing switched '
            "off:",
            "",
            "| samples | collate | ms (CPU) | modelled loss % against default_collate "
            "| mix ms over stack only |",
            "|---|---|---:|---:|---:|",
        ]
        for row in collate:
            lines.append(
                f"| {row['samples']} | {row['collate']} | {_f(row['collate_ms'])} "
                f"| {_f(row['modelled_loss_percent'])} | {_f(row['mix_ms_over_stack'])} |"
            )
    lines += ["", "Targets of the speed issue, worst row per image shape:", ""]
    lines += ["| target | shape | met | worst ratio | where |", "|---|---|---|---:|---|"]
    for target in data["targets"]:
        lines.append(
            f"| {target['target']} | {target.get('shape', '')} | {'yes' if target['met'] else 'no'} "
            f"| {target.get('worst', '')} | {target.get('where', '')} |"
        )
    return "\n".join(lines) + "\n"


def summary(data: dict[str, Any], batch: int = 64, size: int = 224) -> str:
    """The rows of one image shape in per-batch mode (CutOut: per sample), for the README."""
    machine = data["machine"]
    lines = [
        f"{batch}×3×{size}² batches on {machine['cpu']} ({machine['cores']} cores, "
        f"{machine['torch_threads']} thread), torch {machine['torch']}, {machine['date'][:10]}:",
        "",
        "| op | dtype | path | batchmix ms | × floor | torchvision ÷ batchmix |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in data["rows"]:
        wanted_mode = "sample" if row.get("op") == "cutout" else "batch"
        if (
            row["library"] != "batchmix"
            or row["status"] != "ok"
            or (row["batch"], row["size"], row["mode"]) != (batch, size, wanted_mode)
        ):
            continue
        lines.append(
            f"| {row['op']} | {row['dtype']} | {row['path']} | {row['ms']:.2f} "
            f"| {_f(row.get('ratio_to_floor'))} | {_f(row.get('torchvision_over_batchmix'))} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    loaded = json.loads(Path(sys.argv[1]).read_text())
    print((summary if "--summary" in sys.argv[2:] else markdown)(loaded), end="")

"""Fresh outputs advised for huge pages (batchmix._memory)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

import batchmix
from batchmix import _memory
from batchmix.collate import MixCollate

HUGE = 1 << 21


class _Recorder:
    """Stands in for libc's madvise: records (address, length, advice) and succeeds."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, address: int, length: int, advice: int) -> int:
        self.calls.append((address, length, advice))
        return 0


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    rec = _Recorder()
    monkeypatch.setattr(_memory, "_madvise", rec)
    monkeypatch.setattr(_memory, "ENABLED", True)
    return rec


def _covers(call: tuple[int, int, int], tensor: torch.Tensor) -> None:
    address, length, advice = call
    start = tensor.untyped_storage().data_ptr()
    end = start + tensor.untyped_storage().nbytes()
    assert advice == 14  # MADV_HUGEPAGE
    assert address % HUGE == 0 and length % HUGE == 0 and length > 0
    assert start <= address and address + length <= end
    assert (address - start) < HUGE and (end - address - length) < HUGE


class TestAdvice:
    @pytest.mark.parametrize(
        "memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"]
    )
    def test_large_output_is_an_ordinary_tensor_advised_over_its_aligned_part(
        self, recorder: _Recorder, memory_format: torch.memory_format
    ) -> None:
        like = torch.rand(8, 3, 256, 256).contiguous(memory_format=memory_format)
        out = _memory.empty_like(like)
        assert type(out) is torch.Tensor
        assert out.shape == like.shape and out.stride() == like.stride()
        assert len(recorder.calls) == 1
        _covers(recorder.calls[0], out)
        out.share_memory_()  # a normal storage: resizable, movable to shared memory
        assert out.is_shared()

    def test_empty(self, recorder: _Recorder) -> None:
        out = _memory.empty((8, 3, 512, 512), torch.uint8)
        assert out.shape == (8, 3, 512, 512) and out.dtype == torch.uint8
        assert len(recorder.calls) == 1
        _covers(recorder.calls[0], out)

    def test_small_outputs_and_other_devices_are_left_alone(self, recorder: _Recorder) -> None:
        _memory.empty_like(torch.rand(2, 3, 32, 32))
        _memory.empty_like(torch.empty(64, 3, 224, 224, device="meta"))
        assert recorder.calls == []

    def test_switched_off(self, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_memory, "ENABLED", False)
        _memory.empty_like(torch.rand(8, 3, 256, 256))
        assert recorder.calls == []

    def test_tensors_without_storage_of_their_own(self, recorder: _Recorder) -> None:
        def make(row: torch.Tensor) -> torch.Tensor:
            return _memory.empty_like(row.expand(1 << 20))

        torch.vmap(make)(torch.rand(3, 1))
        assert recorder.calls == []


@pytest.mark.parametrize(
    "transform",
    [
        batchmix.CutMix(num_classes=10),
        batchmix.MixUp(num_classes=10),
        batchmix.CutOut(size=64),
    ],
    ids=lambda t: type(t).__name__,
)
def test_out_of_place_outputs_are_advised(recorder: _Recorder, transform: Any) -> None:
    images = torch.rand(8, 3, 256, 256)
    labels = torch.randint(0, 10, (8,))
    out, _ = transform(images, labels)
    assert len(recorder.calls) == 1
    _covers(recorder.calls[0], out)
    recorder.calls.clear()
    transform.mix_batch(images, labels, inplace=True)
    assert recorder.calls == []  # in place: nothing allocated


def test_mix_collate_batch_in_the_main_process_is_advised(recorder: _Recorder) -> None:
    samples = [(torch.rand(3, 256, 256), k % 10) for k in range(8)]
    images, _ = MixCollate(batchmix.MixUp(num_classes=10))(samples)
    assert len(recorder.calls) == 1
    _covers(recorder.calls[0], images)


def _huge_pages_mode() -> str:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    match = re.search(r"\[(\w+)\]", path.read_text()) if path.exists() else None
    return match.group(1) if match else "unavailable"


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages of the mapping of this process that holds ``address``."""
    current = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if head:
            current = int(head.group(1), 16) <= address < int(head.group(2), 16)
        elif current and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(
    _huge_pages_mode() != "madvise",
    reason=f"transparent huge pages are {_huge_pages_mode()!r} here, not 'madvise'",
)
def test_the_kernel_backs_an_advised_output_with_huge_pages() -> None:
    out = _memory.empty((64 << 20,), torch.uint8)  # 64 MiB: its own mapping
    out.fill_(1)
    plain = torch.empty((64 << 20,), dtype=torch.uint8)
    plain.fill_(1)
    assert _anon_huge_kib(out.data_ptr() + (32 << 20)) > 0
    assert _anon_huge_kib(plain.data_ptr() + (32 << 20)) == 0

"""Parsing samples (batchmix.structures): the shortcut for (images, labels) pairs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torchvision import tv_tensors

import batchmix
from batchmix import structures
from batchmix.structures import default_labels_getter, parse_sample

x, y = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])


def _general(inputs: tuple[Any, ...], getter: Any) -> structures.ParsedSample:
    saved = dict(structures._PAIR_SPECS)
    structures._PAIR_SPECS.clear()
    try:
        return parse_sample("T", inputs, getter, labels_required=True)
    finally:
        structures._PAIR_SPECS.update(saved)


@pytest.mark.parametrize(
    "inputs",
    [(x, y), ((x, y),), ([x, y],), (x, x.clone()), (tv_tensors.Image(x), y), ([x, y, y],)],
    ids=["args", "tuple", "list", "float-labels", "image", "triple"],
)
def test_pair_shortcut_finds_what_the_general_path_finds(inputs: tuple[Any, ...]) -> None:
    fast = parse_sample("T", inputs, default_labels_getter, labels_required=True)
    general = _general(inputs, default_labels_getter)
    assert fast.sample is general.sample
    assert [id(v) for v in fast.leaves] == [id(v) for v in general.leaves]
    assert fast.spec == general.spec
    assert (fast.image_positions, fast.mask_positions) == (
        general.image_positions,
        general.mask_positions,
    )
    assert (fast.label_position, fast.has_boxes) == (general.label_position, general.has_boxes)
    images = [torch.zeros_like(image) for image in fast.images]
    new_labels = torch.ones(2)
    out, expected = fast.rebuild(images, [], new_labels), general.rebuild(images, [], new_labels)
    assert type(out) is type(expected) and len(out) == len(expected)
    for a, b in zip(out, expected, strict=True):
        assert type(a) is type(b) and torch.equal(a, b)


@pytest.mark.parametrize("inputs", [(x, y), ((x, y),), ([x, y],)], ids=["args", "tuple", "list"])
def test_pairs_of_plain_tensors_skip_the_tree_walk(
    inputs: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    def walk(tree: Any) -> Any:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr(structures, "tree_flatten", walk)
    monkeypatch.setattr(structures, "tree_unflatten", walk)
    parsed = parse_sample("T", inputs, default_labels_getter, labels_required=True)
    assert parsed.images[0] is x and parsed.labels is y
    images, labels = torch.zeros_like(x), torch.ones(2, 5)
    out = parsed.rebuild([images], [], labels)
    assert type(out) is type(parsed.sample) and out[0] is images and out[1] is labels
    assert parsed.rebuild([images], [], None)[1] is y


def test_same_tensor_twice_and_custom_getters_take_the_general_path() -> None:
    for inputs, getter in (((x, x), default_labels_getter), ((x, y), lambda s: s[1])):
        fast = parse_sample("T", inputs, getter, labels_required=True)
        general = _general(inputs, getter)
        assert (fast.image_positions, fast.label_position) == (
            general.image_positions,
            general.label_position,
        )


def test_a_mask_where_the_labels_are_looked_for() -> None:
    images, labels = torch.rand(4, 3, 8, 8), torch.arange(4)
    mask = tv_tensors.Mask(torch.randint(1, 3, (4, 8, 8)))
    # (images, masks), kornia's call form: a mask, and no labels.
    mixed, mixed_mask = batchmix.CutMix()(images, mask)
    assert isinstance(mixed_mask, tv_tensors.Mask) and not torch.equal(mixed, images)
    # With labels elsewhere, a Mask found first is an error, not labels silently left unmixed.
    for sample in [(images, mask, labels), {"image": images, "seg_label": mask, "label": labels}]:
        with pytest.raises(TypeError, match=r"got a tv_tensors\.Mask where the labels were"):
            batchmix.CutMix(num_classes=4)(sample)
    out = batchmix.CutMix(num_classes=4, labels_getter=lambda s: s["label"])(
        {"image": images, "seg_label": mask, "label": labels}
    )
    assert out["label"].shape == (4, 4) and isinstance(out["seg_label"], tv_tensors.Mask)

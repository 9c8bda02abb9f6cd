"""Fused CPU loops compiled with Numba: each pixel is read and written once, or twice in cache.

Eager PyTorch runs uint8 MixUp as eight passes (casts, two products, a sum, rounding, casts
back), float MixUp in place as three, and copies or fills boxes with one tensor op per sample.
These loops do the same arithmetic in one pass. Only :mod:`batchmix.functional` calls them,
through :mod:`batchmix._fast`, after checking shapes, dtypes, layouts, indices (``index_inside``)
and boxes (``boxes_inside``); only ``index_rows`` checks its own indices, every other loop
trusts its caller and checks no bounds.

Arrays are NumPy views of the tensors' memory. Box loops work on any dtype through the
unsigned or signed integer type of the same size, since they only move bits. The ``*_gather``
loops build a batch from separate sample tensors (given by address, all of one shape and dtype,
which the caller keeps alive), as :class:`batchmix.MixCollate` does instead of stacking them
first; they also turn channels-last samples (``(C, H, W)`` views of ``(H, W, C)`` images, as
``pil_to_tensor`` returns them) into the ``(B, C, H, W)`` batch.

The last section draws λ: NumPy's Beta(α, α) values for a seed (``beta_draws``), computed
without building a NumPy generator, whose set-up costs more than the rest of a small call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.core.errors import NumbaError
from numba.extending import intrinsic
from numba.np import numpy_support

__all__ = [
    "NumbaError",
    "boxes_inside",
    "copy_boxes",
    "copy_fill_boxes",
    "cutmix_gather",
    "fill_boxes",
    "index_inside",
    "index_rows",
    "mixup",
    "mixup_gather",
]

# Adding 1.5 * 2**23 to a float32 in [0, 2**22) leaves its value rounded to an integer (ties to
# even, as torch.round) in the low bits of the mantissa: the low byte is the uint8 level.
_ROUNDER = np.float32(12582912.0)

# Row length in bytes from which _copy_around_box copies around the box in one pass. Measured
# side by side against the one-pass copy, repeated calls on the same batch: rows under 64
# bytes (uint8 images of 32 and 48 px) were up to 19% faster copied whole and then boxed;
# from 64 bytes on (uint8 64-96 px, float32 32-48 px) they were up to 30% slower.
_SHORT_ROW_BYTES = 64


@njit(cache=True, nogil=True, inline="always")
def _mix_one(a, b, wa, wb, rounding):  # type: ignore[no-untyped-def]
    """One pixel of _mix_row."""
    if rounding:
        return np.int32(np.float32(a) * wa + np.float32(b) * wb + _ROUNDER) & 255
    return a * wa + b * wb


@njit(cache=True, nogil=True, inline="always")
def _mix_row(a, b, out, wa, wb, rounding):  # type: ignore[no-untyped-def]
    """``out = wa·a + wb·b``: two products then a sum, in the weights' float type; with
    ``rounding``, uint8 pixels mixed in float32 and rounded to the nearest level."""
    if rounding:
        for k in range(out.shape[0]):
            mixed = np.float32(a[k]) * wa + np.float32(b[k]) * wb + _ROUNDER
            out[k] = np.int32(mixed) & 255
    else:
        for k in range(out.shape[0]):
            out[k] = a[k] * wa + b[k] * wb


def _pointer_typing(typingctx, address, like):  # type: ignore[no-untyped-def]
    """``_pointer(address, like)``: the integer ``address`` as a pointer to elements of
    ``like``'s dtype."""
    signature = types.CPointer(like.dtype)(address, like)  # type: ignore[no-untyped-call]

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

    return signature, codegen


_pointer: Any = intrinsic(_pointer_typing)
carray: Any = numpy_support.carray  # an array over memory at a pointer (typed loosely here)


@njit(cache=True, nogil=True, inline="always")
def _copy_row(a, out):  # type: ignore[no-untyped-def]
    for k in range(out.shape[0]):
        out[k] = a[k]


@njit(cache=True, nogil=True)
def index_inside(index, n):  # type: ignore[no-untyped-def]
    """Whether every entry of ``index`` lies in ``[0, n)``."""
    for k in range(index.shape[0]):  # noqa: SIM110 (a loop Numba compiles, unlike all(...))
        if index[k] < 0 or index[k] >= n:
            return False
    return True


@njit(cache=True, nogil=True)
def boxes_inside(boxes, height, width):  # type: ignore[no-untyped-def]
    """Whether every ``(x1, y1, x2, y2)`` row of ``boxes`` has 0 <= x1 <= x2 <= width and
    0 <= y1 <= y2 <= height."""
    for i in range(boxes.shape[0]):
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
            return False
    return True


@njit(cache=True, nogil=True)
def index_rows(labels, index, wa, wb, rows):  # type: ignore[no-untyped-def]
    """Zeroes row ``i`` of the ``(B, K)`` ``rows`` (uninitialised memory is fine), then adds
    ``wa[i]`` at class ``labels[i]`` and ``wb[i]`` at ``labels[index[i]]``; ``False`` (nothing
    written) unless every label is in ``[0, K)`` and every index in ``[0, B)``."""
    n, classes = rows.shape
    if not index_inside(labels, classes) or not index_inside(index, n):
        return False
    for i in range(n):
        row = rows[i]
        for k in range(classes):
            row[k] = 0
        row[labels[i]] += wa[i]
        row[labels[index[i]]] += wb[i]
    return True


@njit(cache=True, nogil=True)
def _is_permutation(index):  # type: ignore[no-untyped-def]
    seen = np.zeros(index.shape[0], np.bool_)
    for i in range(index.shape[0]):
        if seen[index[i]]:
            return False
        seen[index[i]] = True
    return True


@njit(cache=True, nogil=True)
def mixup(src, dst, index, wa, wb, inplace, block, rounding):  # type: ignore[no-untyped-def]
    """``dst[i] = wa[i] · src[i] + wb[i] · src[index[i]]`` over ``(B, S)`` rows (see _mix_row).

    In place (``dst`` is ``src``), a permutation is followed cycle by cycle: each row is
    written after the row that reads it, and one row per cycle is set aside. Any other index
    is processed in column blocks, each block of every row copied to a small scratch first.
    """
    n, s = src.shape
    if not inplace:
        for i in range(n):
            _mix_row(src[i], src[index[i]], dst[i], wa[i], wb[i], rounding)
        return
    if _is_permutation(index):
        saved = np.empty(s, src.dtype)
        done = np.zeros(n, np.bool_)
        for first in range(n):
            if done[first]:
                continue
            # The cycle first -> index[first] -> ...; its last row reads ``first``.
            last = first
            while index[last] != first:
                last = index[last]
            _copy_row(src[first], saved)
            row = first
            while row != last:
                _mix_row(src[row], src[index[row]], src[row], wa[row], wb[row], rounding)
                done[row] = True
                row = index[row]
            _mix_row(src[last], saved, src[last], wa[last], wb[last], rounding)
            done[last] = True
        return
    scratch = np.empty((n, block), src.dtype)
    for start in range(0, s, block):
        stop = min(start + block, s)
        width = stop - start
        for i in range(n):
            _copy_row(src[i, start:stop], scratch[i, :width])
        for i in range(n):
            _mix_row(
                scratch[i, :width],
                scratch[index[i], :width],
                dst[i, start:stop],
                wa[i],
                wb[i],
                rounding,
            )


@njit(cache=True, nogil=True, inline="always")
def _unpack_copy(a, dst, i, y, x1, x2):  # type: ignore[no-untyped-def]
    """``dst[i, :, y, x1:x2]`` = pixels ``x1:x2`` of the channels-last row ``a``. Three
    channels get a loop of their own, which the compiler vectorises (loops over slices that
    start at 0 vectorise; loops from ``x1`` did not)."""
    channels = dst.shape[1]
    a = a[x1 * channels : x2 * channels]
    if channels == 3:
        r0, r1, r2 = dst[i, 0, y, x1:x2], dst[i, 1, y, x1:x2], dst[i, 2, y, x1:x2]
        for x in range(r0.shape[0]):
            r0[x] = a[3 * x]
            r1[x] = a[3 * x + 1]
            r2[x] = a[3 * x + 2]
        return
    for c in range(channels):
        row = dst[i, c, y, x1:x2]
        for x in range(row.shape[0]):
            row[x] = a[x * channels + c]


@njit(cache=True, nogil=True, inline="always")
def _unpack_mix(a, b, dst, i, y, wa, wb, rounding):  # type: ignore[no-untyped-def]
    """``dst[i, :, y]`` = the mix (see _mix_row) of the channels-last rows ``a`` and ``b``."""
    channels = dst.shape[1]
    if channels == 3:
        r0, r1, r2 = dst[i, 0, y], dst[i, 1, y], dst[i, 2, y]
        for x in range(dst.shape[3]):
            r0[x] = _mix_one(a[3 * x], b[3 * x], wa, wb, rounding)
            r1[x] = _mix_one(a[3 * x + 1], b[3 * x + 1], wa, wb, rounding)
            r2[x] = _mix_one(a[3 * x + 2], b[3 * x + 2], wa, wb, rounding)
        return
    for c in range(channels):
        row = dst[i, c, y]
        for x in range(dst.shape[3]):
            k = x * channels + c
            row[x] = _mix_one(a[k], b[k], wa, wb, rounding)


@njit(cache=True, nogil=True)
def mixup_gather(addresses, dst, index, wa, wb, rounding, channels_last):  # type: ignore[no-untyped-def]
    """``dst[i] = wa[i] · sample[i] + wb[i] · sample[index[i]]`` (see _mix_row), where
    ``sample[j]`` is the ``(C, H, W)`` image at ``addresses[j]``, stored as ``(H, W, C)`` with
    ``channels_last``, and ``dst`` is ``(B, C, H, W)``."""
    n, channels, height, width = dst.shape
    for i in range(n):
        if channels_last:
            own = carray(_pointer(addresses[i], dst), (height, width * channels))
            partner = carray(_pointer(addresses[index[i]], dst), (height, width * channels))
            for y in range(height):
                _unpack_mix(own[y], partner[y], dst, i, y, wa[i], wb[i], rounding)
        else:
            size = channels * height * width
            own = carray(_pointer(addresses[i], dst), (size,))
            partner = carray(_pointer(addresses[index[i]], dst), (size,))
            _mix_row(own, partner, dst[i].ravel(), wa[i], wb[i], rounding)


@njit(cache=True, nogil=True)
def cutmix_gather(addresses, dst, index, boxes, channels_last):  # type: ignore[no-untyped-def]
    """``dst[i]`` = sample ``i`` with box ``i`` taken from sample ``index[i]``, where the
    samples are the ``(C, H, W)`` images at ``addresses``, stored as ``(H, W, C)`` with
    ``channels_last``, and ``dst`` is ``(B, C, H, W)``. Each pixel is written once (box
    pixels twice for contiguous samples with short rows, see _copy_around_box); empty boxes
    just stack the samples."""
    n, channels, height, width = dst.shape
    if not channels_last:
        size = channels * height * width
        for i in range(n):
            own = carray(_pointer(addresses[i], dst), (size,))
            partner = carray(_pointer(addresses[index[i]], dst), (size,))
            box = (boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3])
            _copy_around_box(own, partner, dst[i].ravel(), (channels, height, width), box, True, 0)
        return
    for i in range(n):
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        own = carray(_pointer(addresses[i], dst), (height, width * channels))
        partner = carray(_pointer(addresses[index[i]], dst), (height, width * channels))
        for y in range(height):
            if y1 <= y < y2:
                _unpack_copy(own[y], dst, i, y, 0, x1)
                _unpack_copy(partner[y], dst, i, y, x1, x2)
                _unpack_copy(own[y], dst, i, y, x2, width)
            else:
                _unpack_copy(own[y], dst, i, y, 0, width)


@njit(cache=True, nogil=True, inline="always")
def _copy_box(src, j, dst, i, x1, y1, x2, y2):  # type: ignore[no-untyped-def]
    for c in range(src.shape[1]):
        for y in range(y1, y2):
            _copy_row(src[j, c, y, x1:x2], dst[i, c, y, x1:x2])


@njit(cache=True, nogil=True, inline="always")
def _copy_around_box(own, partner, out, shape, box, from_partner, value):  # type: ignore[no-untyped-def]
    """``out = own`` except inside ``box`` ``(x1, y1, x2, y2)``, which is ``partner``'s
    (``from_partner``) or ``value``; the three are flat ``(C·H·W)`` samples of ``shape``
    ``(C, H, W)``.

    With rows of ``_SHORT_ROW_BYTES`` or more, every element of ``out`` is written once: the
    stretch between two box rows (the end of one row and the start of the next, or of the next
    channel) is one run. Shorter rows make those runs too short to copy fast, so the sample is
    copied whole and the box written over it while it is still in cache."""
    channels, height, width = shape
    x1, y1, x2, y2 = box
    if width * out.itemsize < _SHORT_ROW_BYTES:
        _copy_row(own, out)  # whole sample, then the box over it while it is in cache
        if x1 < x2:
            for c in range(channels):
                for y in range(y1, y2):
                    left = (c * height + y) * width + x1
                    inside = out[left : left + x2 - x1]
                    if from_partner:
                        _copy_row(partner[left : left + x2 - x1], inside)
                    else:
                        for k in range(inside.shape[0]):
                            inside[k] = value
        return
    start = 0  # where the next run of own pixels starts
    if x1 < x2:
        for c in range(channels):
            for y in range(y1, y2):
                left = (c * height + y) * width + x1
                right = left + x2 - x1
                _copy_row(own[start:left], out[start:left])
                inside = out[left:right]
                if from_partner:
                    _copy_row(partner[left:right], inside)
                else:
                    for k in range(inside.shape[0]):
                        inside[k] = value
                start = right
    _copy_row(own[start:], out[start:])


@njit(cache=True, nogil=True, inline="always")
def _copy_around_boxes(src, dst, index, boxes, from_partner, value):  # type: ignore[no-untyped-def]
    """``dst[i] = src[i]`` except box ``i``, which is ``src[index[i]]``'s (``from_partner``)
    or ``value`` (see _copy_around_box)."""
    n, channels, height, width = src.shape
    flat_src, flat_dst = src.reshape(n, -1), dst.reshape(n, -1)
    for i in range(n):
        box = (boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3])
        _copy_around_box(
            flat_src[i],
            flat_src[index[i]],
            flat_dst[i],
            (channels, height, width),
            box,
            from_partner,
            value,
        )


@njit(cache=True, nogil=True)
def copy_boxes(src, dst, index, boxes, inplace):  # type: ignore[no-untyped-def]
    """``dst[i, :, y1:y2, x1:x2] = src[index[i], :, y1:y2, x1:x2]`` with box ``i``; out of
    place, the rest of ``dst[i]`` is ``src[i]`` (written in the same pass).

    Arrays are ``(B, C, H, W)``. In place, a permutation is followed cycle by cycle so that
    each box is read before it is overwritten and only one box per cycle is set aside; any
    other index first copies every partner box aside.
    """
    n = src.shape[0]
    if not inplace:
        _copy_around_boxes(src, dst, index, boxes, True, 0)
        return
    channels, height, width = src.shape[1], src.shape[2], src.shape[3]
    if not _is_permutation(index):
        saved = np.empty((n, channels, height, width), src.dtype)
        for i in range(n):
            x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            _copy_box(src, index[i], saved, i, x1, y1, x2, y2)
        for i in range(n):
            x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            _copy_box(saved, i, src, i, x1, y1, x2, y2)
        return
    saved = np.empty((1, channels, height, width), src.dtype)
    done = np.zeros(n, np.bool_)
    for first in range(n):
        if done[first] or index[first] == first:
            continue
        last = first
        while index[last] != first:
            last = index[last]
        x1, y1, x2, y2 = boxes[last, 0], boxes[last, 1], boxes[last, 2], boxes[last, 3]
        _copy_box(src, first, saved, 0, x1, y1, x2, y2)
        row = first
        while row != last:
            x1, y1, x2, y2 = boxes[row, 0], boxes[row, 1], boxes[row, 2], boxes[row, 3]
            _copy_box(src, index[row], src, row, x1, y1, x2, y2)
            done[row] = True
            row = index[row]
        x1, y1, x2, y2 = boxes[last, 0], boxes[last, 1], boxes[last, 2], boxes[last, 3]
        _copy_box(saved, 0, src, last, x1, y1, x2, y2)
        done[last] = True


@njit(cache=True, nogil=True)
def copy_fill_boxes(src, dst, boxes, value):  # type: ignore[no-untyped-def]
    """``dst = src`` with box ``i`` of every sample set to ``value``, in one pass."""
    _copy_around_boxes(src, dst, np.arange(src.shape[0]), boxes, False, value)


@njit(cache=True, nogil=True)
def fill_boxes(dst, boxes, value):  # type: ignore[no-untyped-def]
    """``dst[i, :, y1:y2, x1:x2] = value`` with box ``i`` of ``(B, C, H, W)`` ``dst``."""
    for i in range(dst.shape[0]):
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        for c in range(dst.shape[1]):
            for y in range(y1, y2):
                row = dst[i, c, y, x1:x2]
                for k in range(row.shape[0]):
                    row[k] = value


@njit(cache=True, nogil=True)
def square_boxes(cx, cy, size, height, width, boxes):  # type: ignore[no-untyped-def]
    """Row i of the ``(n, 4)`` ``boxes``: the square of side ``size`` whose corner is
    ``(cx[i], cy[i]) − size // 2``, each coordinate clipped to ``[0, width]`` or ``[0, height]``."""
    for i in range(boxes.shape[0]):
        x1, y1 = cx[i] - size // 2, cy[i] - size // 2
        boxes[i, 0] = min(max(x1, 0), width)
        boxes[i, 1] = min(max(y1, 0), height)
        boxes[i, 2] = min(max(x1 + size, 0), width)
        boxes[i, 3] = min(max(y1 + size, 0), height)


# --- λ draws: NumPy's Beta(α, α) for α <= 1, from a seed, without building a Generator ---------
#
# ``np.random.default_rng(seed).beta(alpha, alpha, size=n)`` is the draw that defines λ (see
# batchmix.sampling.beta). Its cost is almost all in setting the generator up (SeedSequence's
# entropy coercion, the bit generator's lock, ...), in Python-level code that runs cold after
# every pass over a batch. The loops below compute the same numbers in one compiled call:
# SeedSequence's hash of an int seed into four 64-bit words, PCG64 seeded with them, doubles
# from its 64-bit outputs, and Jöhnk's algorithm, which NumPy uses for Beta(a, b) when a, b <= 1.
# Tests compare them with NumPy bit for bit; larger α stay with NumPy (its Gamma sampler).

_M32 = np.uint64(0xFFFFFFFF)
_SHIFT16 = np.uint64(16)
_SHIFT32 = np.uint64(32)
# SeedSequence's hash constants.
_HASH_INIT_A = np.uint64(0x43B0D7E5)
_HASH_MULT_A = np.uint64(0x931E8875)
_HASH_INIT_B = np.uint64(0x8B51F9DD)
_HASH_MULT_B = np.uint64(0x58F38DED)
_MIX_MULT_L = np.uint64(0xCA01F9DD)
_MIX_MULT_R = np.uint64(0x4973F715)
# PCG64's 128-bit LCG multiplier, as high and low 64-bit words.
_PCG_MULT_HI = np.uint64(0x2360ED051FC65DA4)
_PCG_MULT_LO = np.uint64(0x4385DF649FCCF645)
_TWO_POW_MINUS_53 = 1.0 / 9007199254740992.0


@njit(cache=True, nogil=True, inline="always")
def _hash32(value, multiplier, step):  # type: ignore[no-untyped-def]
    """One word through SeedSequence's hash: ``(hashed word, next multiplier)``, all in
    32-bit arithmetic carried in uint64."""
    value = (value ^ multiplier) & _M32
    multiplier = (multiplier * step) & _M32
    value = (value * multiplier) & _M32
    return value ^ (value >> _SHIFT16), multiplier


@njit(cache=True, nogil=True, inline="always")
def _mix32(x, y):  # type: ignore[no-untyped-def]
    value = ((_MIX_MULT_L * x) - (_MIX_MULT_R * y)) & _M32
    return value ^ (value >> _SHIFT16)


@njit(cache=True, nogil=True)
def seed_words(seed):  # type: ignore[no-untyped-def]
    """``SeedSequence(seed).generate_state(4, np.uint64)`` for an int ``seed`` in
    ``[0, 2**63)``: its entropy is the seed's 32-bit words (one word for seeds below 2**32,
    including 0), hashed into a pool of four words and drawn out as eight."""
    pool = np.zeros(4, np.uint64)
    seed64 = np.uint64(seed)
    entropy = (seed64 & _M32, seed64 >> _SHIFT32)
    count = 1 if seed64 >> _SHIFT32 == 0 else 2
    multiplier = _HASH_INIT_A
    for i in range(4):
        word = entropy[i] if i < count else np.uint64(0)
        pool[i], multiplier = _hash32(word, multiplier, _HASH_MULT_A)
    for src in range(4):
        for dst in range(4):
            if src != dst:
                hashed, multiplier = _hash32(pool[src], multiplier, _HASH_MULT_A)
                pool[dst] = _mix32(pool[dst], hashed)
    words = np.empty(4, np.uint64)
    multiplier = _HASH_INIT_B
    for k in range(4):
        low, multiplier = _hash32(pool[(2 * k) % 4], multiplier, _HASH_MULT_B)
        high, multiplier = _hash32(pool[(2 * k + 1) % 4], multiplier, _HASH_MULT_B)
        words[k] = low | (high << _SHIFT32)
    return words


@njit(cache=True, nogil=True, inline="always")
def _mul_high(a, b):  # type: ignore[no-untyped-def]
    """The high 64 bits of the 128-bit product of two uint64."""
    a0, a1 = a & _M32, a >> _SHIFT32
    b0, b1 = b & _M32, b >> _SHIFT32
    low_low, low_high, high_low = a0 * b0, a0 * b1, a1 * b0
    carry = ((low_low >> _SHIFT32) + (low_high & _M32) + (high_low & _M32)) >> _SHIFT32
    return a1 * b1 + (low_high >> _SHIFT32) + (high_low >> _SHIFT32) + carry


@njit(cache=True, nogil=True, inline="always")
def _pcg_step(state, inc):  # type: ignore[no-untyped-def]
    """``state · multiplier + inc`` modulo 2**128; 128-bit numbers as (high, low) words."""
    high, low = state
    product_low = low * _PCG_MULT_LO
    product_high = _mul_high(low, _PCG_MULT_LO) + low * _PCG_MULT_HI + high * _PCG_MULT_LO
    new_low = product_low + inc[1]
    carry = np.uint64(1) if new_low < product_low else np.uint64(0)
    return (product_high + inc[0] + carry, new_low)


@njit(cache=True, nogil=True, inline="always")
def _pcg_output(state):  # type: ignore[no-untyped-def]
    """PCG's XSL-RR output: the two halves xor-ed, rotated right by the state's top 6 bits."""
    value = state[0] ^ state[1]
    rotation = state[0] >> np.uint64(58)
    return (value >> rotation) | (value << ((np.uint64(64) - rotation) & np.uint64(63)))


@njit(cache=True, nogil=True, inline="always")
def _pcg_seeded(seed):  # type: ignore[no-untyped-def]
    """PCG64 seeded as NumPy seeds it from ``SeedSequence(seed)``: ``(state, inc)``, with
    inc = 2·initseq + 1 and state = (inc + initstate) stepped once."""
    words = seed_words(seed)
    inc = (
        (words[2] << np.uint64(1)) | (words[3] >> np.uint64(63)),
        (words[3] << np.uint64(1)) | np.uint64(1),
    )
    start_low = inc[1] + words[1]
    carry = np.uint64(1) if start_low < inc[1] else np.uint64(0)
    return _pcg_step((inc[0] + words[0] + carry, start_low), inc), inc


@njit(cache=True, nogil=True, inline="always")
def _pcg_double(state, inc):  # type: ignore[no-untyped-def]
    """The next double in [0, 1) (the top 53 bits of the next output) and the new state."""
    state = _pcg_step(state, inc)
    return np.float64(_pcg_output(state) >> np.uint64(11)) * _TWO_POW_MINUS_53, state


@njit(cache=True, nogil=True, inline="always")
def _beta_next(state, inc, alpha):  # type: ignore[no-untyped-def]
    """One Beta(α, α) value by Jöhnk's method, for α <= 1, and the new state: accept
    X / (X + Y) when X + Y <= 1, with X = U^(1/α) and Y = V^(1/α)."""
    power = 1.0 / alpha
    while True:
        u, state = _pcg_double(state, inc)
        v, state = _pcg_double(state, inc)
        x, y = u**power, v**power
        total = x + y
        if total <= 1.0 and u + v > 0.0:
            if x > 0.0 and y > 0.0:
                return x / total, state
            # A power underflowed: the same ratio from the logarithms, one of them shifted to 0.
            log_x, log_y = np.log(u) / alpha, np.log(v) / alpha
            top = max(log_x, log_y)
            log_x, log_y = log_x - top, log_y - top
            return np.exp(log_x - np.log1p(np.exp(min(log_x, log_y)))), state


@njit(cache=True, nogil=True)
def beta_draws(seed, alpha, out):  # type: ignore[no-untyped-def]
    """Fills ``out`` (float64) with ``np.random.default_rng(seed).beta(alpha, alpha,
    size=out.shape[0])``, for 1e-100 <= alpha <= 1 and an int ``seed`` in ``[0, 2**63)``."""
    state, inc = _pcg_seeded(seed)
    for k in range(out.shape[0]):
        out[k], state = _beta_next(state, inc, alpha)


@njit(cache=True, nogil=True)
def beta_draw(seed, alpha):  # type: ignore[no-untyped-def]
    """``beta_draws`` of one value, returned as a float."""
    state, inc = _pcg_seeded(seed)
    return _beta_next(state, inc, alpha)[0]

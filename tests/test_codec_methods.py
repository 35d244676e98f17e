"""Each quantizer of the update codec on its own: sizes, error, bias, rotation, hostile bytes.

The error bounds are the known optima: Lloyd-Max levels of N(0, 1) give mean squared errors
0.3634, 0.1175, 0.03454 and 0.009497 at 1 to 4 bits (Max 1960), and a randomized Hadamard
rotation makes any block behave like a Gaussian one (EDEN, Vargaftik et al. 2022).
"""

from __future__ import annotations

import math

import pytest
import torch
import zstandard
from flwr.app import Array, ArrayRecord

from fedland.codec import (
    CodecConfig,
    CodecError,
    decode_update,
    encode_and_reconstruct,
    encode_update,
    expected_payload_bytes,
    payload_bytes,
)
from fedland.codec.codebooks import cells, dynamic8, fp4, lloyd_max, nf4
from fedland.codec.methods import METHODS, Seeds
from fedland.codec.rotation import hadamard, random_signs, rotate, unrotate
from fedland.quant import pack_bits, unpack_bits
from fedland.seeds import derive_seed

GAUSSIAN_OPTIMUM = {1: 0.3634, 2: 0.1175, 3: 0.03454, 4: 0.009497}
SETTINGS = [
    (name, bits, variant)
    for name, method in METHODS.items()
    for bits in method.widths
    for variant in ((False, True) if method.variant else (False,))
]


def vnmse(decoded: torch.Tensor, value: torch.Tensor) -> float:
    return float((decoded - value).square().sum() / value.square().sum())


def gaussian(count: int = 256 * 256, seed: int = 0) -> torch.Tensor:
    return torch.randn(count // 256, 256, generator=torch.Generator().manual_seed(seed))


def heavy_tailed(count: int = 256 * 256) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.distributions.StudentT(3.0).sample((count // 256, 256))


def config(name: str, bits: int, variant: bool = False, block: int = 256) -> CodecConfig:
    return CodecConfig(bits=bits, method=name, block_size=block, stochastic=variant)


def one_tensor(value: torch.Tensor, codec: CodecConfig, seed: int = 3):
    record, reconstructed = encode_and_reconstruct({"w": value}, codec, seed)
    return record, reconstructed["w"], decode_update(record, config=codec, seed=seed)["w"]


# -- sizes ---------------------------------------------------------------------------------


def formula(name: str, count: int, bits: int, block: int) -> int:
    """Each method's documented layout, written out independently of the code."""
    blocks = math.ceil(count / block)
    codes = math.ceil(count * bits / 8)
    if name in ("uniform", "lloyd"):
        return 2 * blocks + codes  # bfloat16 scale per block, packed codes
    if name == "eden":
        return 2 * blocks + math.ceil(blocks * block * bits / 8)  # padding is rotated in
    if name == "qsgd":
        return 4 * blocks + codes  # float32 norm per bucket
    if name in ("nf4", "fp4"):
        return 4 * math.ceil(count / 64) + codes  # float32 absmax per block of 64
    if name == "blockwise8":
        return 4 * math.ceil(count / 4096) + count
    if name == "sign":
        return 4 + math.ceil(count / 8)
    if name == "topk":
        return 8 * min(count, max(1, count * bits // 64))
    raise AssertionError(name)


EXACT = [setting for setting in SETTINGS if setting[0] != "ecsq"]


@pytest.mark.parametrize(("name", "bits", "variant"), EXACT)
@pytest.mark.parametrize(("shape", "block"), [((40, 50), 256), ((33, 7, 3, 3), 64)])
def test_payload_size_is_the_documented_formula(name, bits, variant, shape, block):
    codec = config(name, bits, variant, block)
    value = torch.randn(shape)
    record = encode_update({"w": value}, codec, seed=1)
    size = formula(name, value.numel(), bits, block)
    assert len(record["w"].data) == size
    assert payload_bytes(record) == expected_payload_bytes({"w": (shape, value.dtype)}, codec)


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize(("shape", "block"), [((40, 50), 256), ((33, 7, 3, 3), 64)])
def test_ecsq_sends_scales_then_one_zstd_frame_of_its_packed_codes(bits, shape, block):
    codec = config("ecsq", bits, block=block)
    value = torch.randn(shape)
    data = encode_update({"w": value}, codec, seed=1)["w"].data
    count, code_bits = value.numel(), 4 if bits < 4 else 8
    scales = 2 * math.ceil(count / block)
    frame = data[scales:]
    packed = zstandard.ZstdDecompressor().decompress(frame)
    assert zstandard.frame_content_size(frame) == len(packed) == math.ceil(count * code_bits / 8)
    codes = unpack_bits(torch.frombuffer(bytearray(packed), dtype=torch.uint8), code_bits, count)
    assert int(codes.max()) <= 2**code_bits - 2  # +-7 or +-127 around the middle code
    assert len(data) <= expected_payload_bytes({"w": (shape, value.dtype)}, codec)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_ecsq_costs_about_its_bits_and_beats_lloyd_at_three_and_four(bits):
    value = gaussian(256 * 512)
    errors, sizes = {}, {}
    for name in ("lloyd", "ecsq"):
        record, reconstructed, decoded = one_tensor(value, config(name, bits))
        assert torch.equal(reconstructed, decoded)
        errors[name], sizes[name] = vnmse(decoded, value), payload_bytes(record)
    assert 8 * sizes["ecsq"] / value.numel() <= bits + 0.1
    assert errors["ecsq"] <= errors["lloyd"] * (1.0 if bits == 2 else 0.85), errors


# -- error ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_lloyd_and_eden_reach_the_gaussian_optimum(bits):
    value = gaussian()
    for name in ("lloyd", "eden"):
        _, reconstructed, decoded = one_tensor(value, config(name, bits))
        assert torch.equal(reconstructed, decoded)
        assert vnmse(decoded, value) <= GAUSSIAN_OPTIMUM[bits] * 1.03, name


@pytest.mark.parametrize("name", ["lloyd", "ecsq", "eden", "uniform", "qsgd", "topk"])
def test_more_bits_never_give_more_error(name):
    widths = [b for b in METHODS[name].widths if name != "uniform" or b != 2]
    errors = [vnmse(one_tensor(gaussian(), config(name, b))[2], gaussian()) for b in widths]
    assert errors == sorted(errors, reverse=True), dict(zip(widths, errors, strict=True))


def test_the_rotation_makes_heavy_tails_cost_what_gaussians_cost():
    value = heavy_tailed()
    rotated = vnmse(one_tensor(value, config("eden", 4))[2], value)
    grid = vnmse(one_tensor(value, config("uniform", 4))[2], value)
    assert rotated <= GAUSSIAN_OPTIMUM[4] * 1.1 and grid > 5 * rotated


@pytest.mark.parametrize(("name", "bits"), [("nf4", 4), ("fp4", 4), ("blockwise8", 8)])
def test_the_bitsandbytes_formats_reconstruct_within_their_codebook_step(name, bits):
    value = gaussian()
    _, _, decoded = one_tensor(value, config(name, bits))
    levels, _ = {"nf4": nf4, "fp4": fp4, "blockwise8": dynamic8}[name]()
    gaps = (levels[1:] - levels[:-1]).max()
    block = METHODS[name].fixed_block
    rows = value.reshape(-1, block)
    bound = rows.abs().amax(1, keepdim=True) * gaps / 2 * (1 + 1e-4)
    assert bool(((decoded.reshape(-1, block) - rows).abs() <= bound).all())


def test_sign_and_topk_are_what_their_definitions_say():
    value = gaussian()
    _, _, signs = one_tensor(value, config("sign", 1))
    assert torch.equal(signs, torch.where(value >= 0, 1.0, -1.0) * value.abs().mean())
    _, _, kept = one_tensor(value, config("topk", 2))
    count = value.numel() * 2 // 64
    assert int((kept != 0).sum()) == count
    smallest_kept = float(kept.abs()[kept != 0].min())
    assert float(value.abs()[kept == 0].max()) <= smallest_kept
    assert torch.equal(kept[kept != 0], value[kept != 0])


# -- bias ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bits", "variant"), [("eden", 1, True), ("eden", 2, True), ("uniform", 2, True),
                                  ("qsgd", 2, False), ("qsgd", 4, False)],
)  # fmt: skip
def test_unbiased_variants_average_to_the_update(name, bits, variant):
    value = torch.randn(4, 256, generator=torch.Generator().manual_seed(2))
    codec = config(name, bits, variant)
    draws = 400
    mean = sum(one_tensor(value, codec, seed)[2] for seed in range(draws)) / draws
    one_draw = vnmse(one_tensor(value, codec, 0)[2], value)
    # The mean of unbiased draws has 1/draws of one draw's error (plus bfloat16 scales).
    assert vnmse(mean, value) <= 3 * one_draw / draws + 1e-4


def test_the_least_squares_eden_scale_is_biased_towards_zero():
    value = torch.randn(4, 256, generator=torch.Generator().manual_seed(2))
    mean = sum(one_tensor(value, config("eden", 1), seed)[2] for seed in range(200)) / 200
    shrink = float((mean * value).sum() / value.square().sum())
    assert 0.55 < shrink < 0.75  # 2 / pi = 0.64 for sign quantization of a Gaussian


NORM_SCALED = [(name, bits) for name, method in METHODS.items() if method.scales
               for bits in method.widths]  # fmt: skip


@pytest.mark.parametrize(("name", "bits"), NORM_SCALED)
def test_the_norm_scale_keeps_each_blocks_projection_on_itself(name, bits):
    value = torch.randn(40, 100, generator=torch.Generator().manual_seed(bits))
    codec = CodecConfig(bits=bits, method=name, block_size=64, scale="norm")
    record, reconstructed, decoded = one_tensor(value, codec)
    assert torch.equal(reconstructed, decoded)  # the receiver needs no word of the scale
    blocks = zip(value.reshape(-1).split(64), decoded.reshape(-1).split(64), strict=True)
    for x, q in blocks:  # the last block holds 32 values: its padding takes no part
        assert float((q * x).sum()) == pytest.approx(float(x.square().sum()), rel=2**-7)
    least_squares = one_tensor(value, config(name, bits, block=64))
    if METHODS[name].exact_size:
        assert len(record["w"].data) == len(least_squares[0]["w"].data)
    # Least squares has the least error; the norm scale gives error v / (1 - v) for its v.
    error, least = vnmse(decoded, value), vnmse(least_squares[2], value)
    assert least <= error <= 1.05 * least / (1 - least)  # equal at 8 bits (bfloat16 scales)


def test_the_least_squares_scale_shrinks_each_step_by_its_error():
    value = gaussian()
    decoded = one_tensor(value, config("lloyd", 1))[2]
    shrink = float((decoded * value).sum() / value.square().sum())
    assert shrink == pytest.approx(1 - vnmse(decoded, value), abs=1e-3)  # 0.64 at 1 bit


@pytest.mark.parametrize("name", ["eden", "uniform", "qsgd", "nf4", "sign", "topk"])
def test_methods_without_a_norm_scale_refuse_it(name):
    bits = METHODS[name].widths[0]
    with pytest.raises(ValueError, match=f"scale: {name} has no norm scale"):
        CodecConfig(bits=bits, method=name, scale="norm")
    CodecConfig(bits=32, method=name, scale="norm")  # float32 has no blocks to scale


# -- rotation ------------------------------------------------------------------------------


def test_the_rotation_is_orthonormal_and_its_own_inverse_with_the_same_signs():
    rows = torch.randn(6, 1024)
    signs = random_signs(rows.numel(), 11, rows.device)
    rotated = rotate(rows, signs)
    torch.testing.assert_close(rotated.norm(dim=1), rows.norm(dim=1), rtol=1e-5, atol=0)
    torch.testing.assert_close(unrotate(rotated, signs), rows, rtol=0, atol=1e-5)
    basis = hadamard(torch.eye(8))
    torch.testing.assert_close(basis @ basis.T, torch.eye(8), rtol=0, atol=1e-6)
    assert set((basis * 8**0.5).round().unique().tolist()) == {-1.0, 1.0}
    for size in (2, 32, 512):  # radix-4 stages with a final radix-2 one, or without
        square = hadamard(torch.eye(size))
        torch.testing.assert_close(square @ square, torch.eye(size), rtol=0, atol=1e-5)


def test_sender_and_receiver_rotate_with_the_same_signs_and_only_with_them():
    value = heavy_tailed()
    codec = config("eden", 3)
    record, reconstructed, decoded = one_tensor(value, codec, seed=5)
    assert torch.equal(reconstructed, decoded)  # bit for bit, as the downlink needs
    wrong = decode_update(record, config=codec, seed=6)["w"]
    assert vnmse(wrong, value) > 0.5  # the rotation cannot be undone without the seed
    other = encode_update({"w": value}, codec, seed=derive_seed(5, "other"))
    assert other["w"].data != record["w"].data


def butterflies(rows: torch.Tensor) -> torch.Tensor:
    """The transform as defined: radix-2 butterflies over bit 0 of the index, then bit 1...,
    then the scale 1 / sqrt(d)."""
    count, size = rows.shape
    values = rows.clone()
    span = 1
    while span < size:
        pairs = values.view(count, -1, 2, span)
        first, second = pairs[:, :, 0].clone(), pairs[:, :, 1].clone()
        pairs[:, :, 0], pairs[:, :, 1] = first + second, first - second
        span *= 2
    return values * (1.0 / math.sqrt(size))


def bits_of(values: torch.Tensor) -> torch.Tensor:
    return values.contiguous().view(torch.int32)


@pytest.mark.parametrize("size", [1, 2, 8, 64, 256, 2048])
def test_the_transform_adds_in_the_order_of_its_definition_bit_for_bit(size):
    generator = torch.Generator().manual_seed(size)
    rows = torch.randn(9, size, generator=generator)
    rows *= torch.logspace(-40, 37, rows.numel()).view(rows.shape)  # tiny to near overflow
    rows[0, : min(size, 2)] = torch.tensor([0.0, -0.0])[: min(size, 2)]
    signs = random_signs(rows.numel(), size, rows.device).view(rows.shape)
    assert torch.equal(bits_of(hadamard(rows)), bits_of(butterflies(rows)))
    assert torch.equal(bits_of(rotate(rows, signs)), bits_of(butterflies(rows * signs)))
    assert torch.equal(bits_of(unrotate(rows, signs)), bits_of(butterflies(rows) * signs))


def test_random_signs_are_the_bits_of_the_seeded_bytes():
    generator = torch.Generator().manual_seed(11)
    random = torch.randint(0, 256, (3,), generator=generator, dtype=torch.uint8)
    bits = [(int(byte) >> shift) & 1 for byte in random for shift in range(8)]
    expected = torch.tensor([1.0 - 2.0 * bit for bit in bits[:21]])
    assert torch.equal(random_signs(21, 11, random.device), expected)


def test_each_tensor_draws_from_streams_named_by_the_message_seed_its_name_and_purpose():
    seeds = Seeds(5, "conv.weight")
    assert seeds("rotation") == derive_seed(derive_seed(5, "conv.weight"), "rotation")
    assert seeds("rounding") == derive_seed(derive_seed(5, "conv.weight"), "rounding")


# -- codebooks -----------------------------------------------------------------------------


def test_lloyd_max_levels_are_the_published_ones_and_a_fixed_point():
    levels, thresholds = lloyd_max(2)
    torch.testing.assert_close(levels, torch.tensor([-1.5104, -0.4528, 0.4528, 1.5104]),
                               rtol=0, atol=1e-4)  # fmt: skip
    assert float(lloyd_max(1)[0][1]) == pytest.approx(math.sqrt(2 / math.pi), abs=1e-6)
    torch.testing.assert_close(thresholds, (levels[1:] + levels[:-1]) / 2)
    for bits in (1, 2, 3, 4, 8):
        levels, _ = lloyd_max(bits)
        assert len(levels) == 2**bits and torch.equal(levels, -levels.flip(0))


def test_nf4_fp4_and_the_dynamic_map_have_the_bitsandbytes_values():
    values, _ = nf4()
    assert len(values) == 16 and float(values[0]) == -1 and float(values[-1]) == 1
    assert 0.0 in values.tolist()
    assert float(values[8]) == pytest.approx(0.0796, abs=1e-4)  # QLoRA's NF4 table
    assert float(values[-2]) == pytest.approx(0.7230, abs=1e-4)
    assert sorted(set(fp4()[0].abs().tolist()))[-3:] == pytest.approx([0.5, 2 / 3, 1.0])
    dynamic, _ = dynamic8()
    assert len(dynamic) == 256 and float(dynamic.max()) == 1.0 and 0.0 in dynamic.tolist()


CODEBOOKS = [(lloyd_max, (bits,)) for bits in (1, 2, 3, 4, 8)] + [
    (nf4, ()),
    (fp4, ()),
    (dynamic8, ()),
]


@pytest.mark.parametrize(("codebook", "args"), CODEBOOKS)
def test_the_cell_table_counts_the_thresholds_below_a_value_as_bucketize_does(codebook, args):
    thresholds = codebook(*args)[1]
    generator = torch.Generator().manual_seed(len(thresholds))
    patterns = torch.randint(-(2**31), 2**31, (100_000,), generator=generator).to(torch.int32)
    around = bits_of(thresholds).unsqueeze(1) + torch.arange(-2, 3, dtype=torch.int32)
    special = [0.0, -0.0, 1e-45, -1e-45, 3e38, -3e38, math.inf, -math.inf, math.nan, -math.nan]
    values = torch.cat(
        [
            patterns.view(torch.float32),
            around.view(-1).view(torch.float32),
            torch.tensor(special),
            gaussian().view(-1) * 3,
        ]
    )
    quiet = bits_of(values) & 0x00400000 != 0  # arithmetic makes quiet NaNs only
    values = values[~values.isnan() | quiet]
    expected = torch.bucketize(values, thresholds).masked_fill_(values.isnan(), 0)
    assert torch.equal(cells(codebook, *args, device=values.device).codes(values), expected)


def packed_by_definition(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Code i in bits [i * bits, (i + 1) * bits) of the stream, bit 0 the lowest of byte 0."""
    stream = 0
    for index, code in enumerate(codes.tolist()):
        stream |= code << (index * bits)
    size = (len(codes) * bits + 7) // 8
    return torch.tensor(list(stream.to_bytes(size, "little")), dtype=torch.uint8)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 7, 8])
def test_codes_pack_into_the_bytes_of_their_definition(bits):
    generator = torch.Generator().manual_seed(bits)
    for count in (0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099):
        codes = torch.randint(0, 2**bits, (count,), generator=generator, dtype=torch.uint8)
        packed = pack_bits(codes, bits)
        assert torch.equal(packed, packed_by_definition(codes, bits))
        assert torch.equal(unpack_bits(packed, bits, count), codes)
        noise = torch.randint(0, 256, (len(packed) + 3,), generator=generator, dtype=torch.uint8)
        stream = int.from_bytes(bytes(noise.tolist()), "little")
        expected = [(stream >> (i * bits)) & (2**bits - 1) for i in range(count)]
        assert unpack_bits(noise, bits, count).tolist() == expected
        assert torch.equal(
            unpack_bits(noise[3:], bits, count), unpack_bits(noise[3:].clone(), bits, count)
        )
        assert torch.equal(pack_bits(torch.cat([codes, codes])[count:], bits), packed)


@pytest.mark.parametrize(("name", "bits", "variant"), SETTINGS)
def test_what_the_receiver_decodes_is_what_the_sender_reconstructs(name, bits, variant):
    value = torch.randn(33, 7, 3, 3, generator=torch.Generator().manual_seed(bits))
    _, reconstructed, decoded = one_tensor(value, config(name, bits, variant, block=64))
    assert torch.equal(reconstructed, decoded)


# -- hostile payloads ----------------------------------------------------------------------


def tampered(record: ArrayRecord, data: bytes) -> ArrayRecord:
    array = record["w"]
    return ArrayRecord(
        {"w": Array(dtype=array.dtype, shape=array.shape, stype=array.stype, data=data)}
    )


@pytest.mark.parametrize(("name", "bits", "variant"), EXACT)
def test_truncated_and_padded_payloads_name_the_tensor(name, bits, variant):
    codec = config(name, bits, variant)
    record, _, _ = one_tensor(torch.randn(40, 50), codec)
    data = record["w"].data
    for broken in (data[:-1], data + b"\0", b""):
        with pytest.raises(CodecError, match="'w': .* bytes where stype and shape imply"):
            decode_update(tampered(record, broken), config=codec, seed=3)


@pytest.mark.parametrize("name", ["lloyd", "eden", "qsgd", "nf4", "blockwise8", "sign"])
def test_nan_and_negative_scales_are_refused(name):
    bits = METHODS[name].widths[-1] if name != "sign" else 1
    codec = config(name, bits)
    record, _, _ = one_tensor(torch.randn(40, 50), codec)
    width = 2 if name in ("lloyd", "eden") else 4
    dtype = torch.bfloat16 if width == 2 else torch.float32
    for scale in (float("nan"), -1.0, float("inf")):
        head = torch.tensor([scale], dtype=dtype).view(torch.uint8).numpy().tobytes()
        with pytest.raises(CodecError, match="'w': scales that are negative or not finite"):
            decode_update(tampered(record, head + record["w"].data[width:]), seed=3)


def test_topk_indices_out_of_range_or_order_are_refused():
    codec = config("topk", 4)
    record, _, _ = one_tensor(torch.randn(40, 50), codec)
    data = bytearray(record["w"].data)
    kept = len(data) // 8
    indices = torch.frombuffer(bytearray(data[: 4 * kept]), dtype=torch.int32).clone()
    for broken, reason in (
        (torch.cat([indices[:-1], torch.tensor([2000], dtype=torch.int32)]), "outside"),
        (torch.cat([indices[:1], indices[:-1]]), "increasing"),
        (torch.cat([torch.tensor([-1], dtype=torch.int32), indices[1:]]), "outside"),
    ):
        payload = broken.numpy().tobytes() + bytes(data[4 * kept :])
        with pytest.raises(CodecError, match=f"'w': indices .*{reason}"):
            decode_update(tampered(record, payload), seed=3)
    nan = bytes(data[: 4 * kept]) + torch.full((kept,), float("nan")).numpy().tobytes()
    with pytest.raises(CodecError, match="'w': non-finite values"):
        decode_update(tampered(record, nan), seed=3)


@pytest.mark.parametrize("name", ["lloyd", "eden"])
def test_a_scale_that_overflows_only_in_decoding_is_refused(name):
    codec = config(name, 4)
    record, _, _ = one_tensor(torch.randn(4, 256), codec)
    # 1e38 x the largest level (2.73) is finite; eden's butterflies overflow its sum of 256
    scale = 1e38 if name == "eden" else 2e38
    head = torch.tensor([scale], dtype=torch.bfloat16).view(torch.uint8).numpy().tobytes()
    scales = record["w"].data[2:8]  # the other three blocks' scales, then all codes 15
    data = head + scales + b"\xff" * (len(record["w"].data) - 8)
    with pytest.raises(CodecError, match="'w': scales too large: decoded values are not finite"):
        decode_update(tampered(record, data), seed=3)


def ecsq_record(bits: int = 2) -> tuple[ArrayRecord, int]:
    """A 4-bit-coded ecsq tensor of 2000 values, and the length of its scales."""
    record, _, _ = one_tensor(torch.randn(40, 50), config("ecsq", bits))
    return record, 2 * math.ceil(2000 / 256)


def test_damaged_ecsq_frames_are_refused_naming_the_tensor():
    record, scales = ecsq_record()
    data = record["w"].data
    packed = zstandard.ZstdDecompressor().decompress(data[scales:])
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(packed)
    for broken, problem in (
        (data[:-1], "truncated zstd frame"),
        (data + b"\0", "1 bytes after the zstd frame"),
        (data[:scales] + unsized, "the zstd frame declares no size where"),
        (data[:scales] + b"\0" * 40, "codes are not a zstd frame"),
        (b"", "codes are not a zstd frame"),
    ):
        with pytest.raises(CodecError, match=f"'w': {problem}"):
            decode_update(tampered(record, broken), seed=3)


def test_an_ecsq_frame_cannot_make_the_receiver_allocate_more_than_the_shape_implies():
    record, _, _ = one_tensor(torch.randn(400, 500), config("ecsq", 2))
    data, scales = record["w"].data, 2 * math.ceil(200_000 / 256)
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (1 << 30))  # 1 GiB in 32 kB
    assert scales + len(bomb) <= len(data)  # within the payload's bound: the frame decides
    with pytest.raises(CodecError, match="'w': the zstd frame declares 1073741824 bytes"):
        decode_update(tampered(record, data[:scales] + bomb), seed=3)
    bound = expected_payload_bytes({"w": ((400, 500), torch.float32)}, config("ecsq", 2))
    with pytest.raises(CodecError, match=f"'w': {bound + 1} bytes where stype and shape allow"):
        decode_update(tampered(record, data + b"\0" * (bound + 1 - len(data))), seed=3)


def test_ecsq_codes_outside_the_grid_are_refused():
    record, scales = ecsq_record()
    unused = zstandard.ZstdCompressor().compress(b"\xff" * 1000)  # code 15: no grid point
    with pytest.raises(CodecError, match="'w': codes above 14"):
        decode_update(tampered(record, record["w"].data[:scales] + unused), seed=3)

import functools
import math
import random
import re
import struct

import pytest
import torch
from flwr.app import Array, ArrayRecord, RecordDict

from fedland.codec import (
    STYPE_PREFIX,
    CodecConfig,
    CodecError,
    decode_update,
    encode_and_reconstruct,
    encode_update,
    encode_with_feedback,
    expected_payload_bytes,
    fp32_bytes,
    payload_bytes,
)
from fedland.codec.format import Encoding, parse_stype
from fedland.federation.weights import float_state, from_record, to_record
from fedland.model import DUNetConfig, build_model
from fedland.quant import max_level, pack_bits, quantize_blockwise

BITS = [32, 16, 8, 4, 3, 2, 1]
U = "uniform"  # the blockwise grid: most format tests use it, its layout is simplest
SMALL_DUNET = DUNetConfig(
    num_unets=2, order=1, num_landmarks=68, width=64, growth=16, neck=4, input_size=128
)
PAPER_DUNET = DUNetConfig(num_unets=8, order=1, num_landmarks=16)


def update() -> dict[str, torch.Tensor]:
    """A small update: quantized convolutions, float vectors and integer buffers."""
    return {
        "conv.weight": torch.randn(32, 16, 3, 3) * 1e-3,
        "conv2.weight": torch.randn(40, 50) * 1e-2,  # 2000 values: a partial last block
        "norm.weight": torch.randn(32) * 1e-3,
        "small.weight": torch.randn(4, 4, 3, 3),  # 144 < min_quantize_size
        "norm.num_batches_tracked": torch.tensor(123456789012, dtype=torch.int64),
        "index": torch.arange(-5, 5, dtype=torch.int32),
    }


def spec(tensors) -> dict:
    return {name: (tuple(value.shape), value.dtype) for name, value in tensors.items()}


def dunet_state(config: DUNetConfig) -> dict[str, torch.Tensor]:
    """The model's state dict on the meta device: shapes and dtypes, no values."""
    with torch.device("meta"):
        return build_model(config).state_dict()


def replace(record: ArrayRecord, name: str, **fields) -> ArrayRecord:
    """A copy of the record with some fields of one Array replaced."""
    array = record[name]
    old = {"dtype": array.dtype, "shape": array.shape, "stype": array.stype, "data": array.data}
    copy = ArrayRecord(dict(record))
    copy[name] = Array(**{**old, **fields})
    return copy


def with_stype(record: ArrayRecord, name: str, stype: str) -> ArrayRecord:
    """A copy of the record with the stype of one Array replaced (`{}` stands for the prefix)."""
    return replace(record, name, stype=stype.format(STYPE_PREFIX))


@functools.cache
def paper_float_state() -> dict[str, torch.Tensor]:
    """What a client of the paper DU-Net sends: its float tensors."""
    return float_state(build_model(PAPER_DUNET))


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits", BITS)
def test_every_tensor_becomes_one_array_with_the_original_dtype_and_shape(bits):
    tensors = update()
    record = encode_update(tensors, CodecConfig(bits=bits))
    assert list(record) == list(tensors)
    for name, value in tensors.items():
        array = record[name]
        assert array.stype.startswith(STYPE_PREFIX) and STYPE_PREFIX == "fedland.codec/3"
        assert array.dtype == str(value.numpy().dtype)
        assert array.shape == tuple(value.shape)
    decoded = decode_update(record, spec(tensors), bits)
    for name, value in tensors.items():
        expected_dtype = torch.float32 if value.is_floating_point() else value.dtype
        assert decoded[name].dtype == expected_dtype
        assert decoded[name].shape == value.shape
        assert decoded[name].device.type == "cpu"


def test_32_bits_is_exact_and_16_bits_within_float16_precision():
    tensors = update()
    exact = decode_update(encode_update(tensors, CodecConfig(bits=32)))
    half = decode_update(encode_update(tensors, CodecConfig(bits=16)))
    for name, value in tensors.items():
        assert torch.equal(exact[name], value)
        if value.is_floating_point():
            torch.testing.assert_close(half[name], value, rtol=2**-11, atol=2**-25)
            assert torch.equal(half[name], value.half().float())


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("bits", [8, 4, 3, 2, 1])
def test_quantized_error_is_within_the_block_scale_bound(bits, stochastic):
    tensors = update()
    block = 256
    config = CodecConfig(bits=bits, method=U, block_size=block, stochastic=stochastic)
    decoded = decode_update(encode_update(tensors, config, seed=3), bits=bits, seed=3)
    for name in ["conv.weight", "conv2.weight"]:
        value = tensors[name].reshape(-1)
        error = (decoded[name].reshape(-1) - value).abs()
        for start in range(0, value.numel(), block):
            largest = float(value[start : start + block].abs().max()) * (1 + 2**-7)
            if bits == 1:
                bound = 2 * largest if stochastic else largest
            else:
                step = largest / max_level(bits)
                bound = step if stochastic else step / 2 * (1 + 1e-5)
            assert float(error[start : start + block].max()) <= bound
    # Tensors that are not quantized travel at float_bits = 16.
    assert torch.equal(decoded["norm.weight"], tensors["norm.weight"].half().float())
    assert torch.equal(decoded["small.weight"], tensors["small.weight"].half().float())


@pytest.mark.parametrize("bits", BITS)
def test_integer_tensors_round_trip_exactly(bits):
    tensors = {
        "count": torch.tensor(2**62 + 7, dtype=torch.int64),
        "i32": torch.randint(-(2**31), 2**31 - 1, (50, 50), dtype=torch.int32),
        "i16": torch.randint(-(2**15), 2**15 - 1, (7,), dtype=torch.int16),
        "i8": torch.randint(-128, 127, (3, 3), dtype=torch.int8),
        "u8": torch.randint(0, 255, (2000, 2), dtype=torch.uint8),
        "empty": torch.zeros(0, 3, dtype=torch.int64),
    }
    record = encode_update(tensors, CodecConfig(bits=bits))
    decoded = decode_update(record, spec(tensors), bits)
    for name, value in tensors.items():
        assert decoded[name].dtype == value.dtype
        assert torch.equal(decoded[name], value)
    assert all(array.stype == "fedland.codec/3;method=raw" for array in record.values())
    assert record["count"].data == struct.pack("<q", 2**62 + 7)


def test_wire_layout_is_bfloat16_scales_then_packed_codes_with_no_header():
    value = torch.randn(40, 50)
    record = encode_update({"w": value}, CodecConfig(bits=4, method=U, block_size=300))
    codes, scales = quantize_blockwise(value, 4, 300)
    expected = scales.view(torch.int16).numpy().astype("<i2").tobytes()
    expected += pack_bits(codes, 4).numpy().tobytes()
    assert record["w"].data == expected
    assert record["w"].stype == "fedland.codec/3;method=uniform;bits=4;block=300;rounding=nearest"
    config = CodecConfig(bits=4, method=U, block_size=300, stochastic=True)
    stochastic = encode_update({"w": value}, config)
    assert stochastic["w"].stype.endswith(";bits=4;block=300;rounding=stochastic")
    raw = encode_update({"v": torch.tensor([1.5, -2.0])}, CodecConfig(bits=4))
    assert raw["v"].data == struct.pack("<2e", 1.5, -2.0)
    assert raw["v"].stype == "fedland.codec/3;method=float;bits=16"
    full = encode_update({"v": torch.tensor([1.5, -2.0])}, CodecConfig(bits=4, float_bits=32))
    assert full["v"].data == struct.pack("<2f", 1.5, -2.0)
    assert full["v"].stype == "fedland.codec/3;method=float;bits=32"


def test_float64_and_float16_inputs_decode_to_float32():
    tensors = {"d": torch.randn(3, 5, dtype=torch.float64), "h": torch.randn(4).half()}
    record = encode_update(tensors, CodecConfig(bits=32))
    assert record["d"].dtype == "float64" and record["h"].dtype == "float16"
    decoded = decode_update(record, spec(tensors))
    assert torch.equal(decoded["d"], tensors["d"].float())
    assert torch.equal(decoded["h"], tensors["h"].float())


def test_the_seed_makes_stochastic_encoding_reproducible():
    tensors = update()
    config = CodecConfig(bits=2, method=U, stochastic=True)
    first = encode_update(tensors, config, seed=5)
    second = encode_update(tensors, config, seed=5)
    assert all(first[name].data == second[name].data for name in tensors)
    other = encode_update(tensors, config, seed=6)
    for name in ("conv.weight", "conv2.weight"):  # the stochastically rounded tensors
        assert other[name].data != first[name].data, name


def test_reconstruction_equals_what_the_receiver_decodes():
    tensors = update()
    for bits in BITS:
        record, reconstructed = encode_and_reconstruct(tensors, CodecConfig(bits=bits))
        decoded = decode_update(record)
        assert set(reconstructed) == {n for n, v in tensors.items() if v.is_floating_point()}
        for name, value in reconstructed.items():
            assert torch.equal(value, decoded[name])


def test_float_bits_8_quantizes_the_other_float_tensors_to_8_bits_with_nearest_rounding():
    tensors = update()
    config = CodecConfig(bits=4, method=U, stochastic=True, float_bits=8)
    record, reconstructed = encode_and_reconstruct(tensors, config, seed=0)
    grid = "fedland.codec/3;method=uniform"
    assert record["conv.weight"].stype == f"{grid};bits=4;block=256;rounding=stochastic"
    small = ["norm.weight", "small.weight"]
    for name in small:
        assert record[name].stype == f"{grid};bits=8;block=256;rounding=nearest"
    assert record["index"].stype == "fedland.codec/3;method=raw"
    decoded = decode_update(record, spec(tensors), bits=4)
    for name in small:
        assert torch.equal(decoded[name], reconstructed[name])
        value = tensors[name].reshape(-1)
        step = float(value.abs().max()) * (1 + 2**-7) / max_level(8)  # one block each
        assert float((decoded[name].reshape(-1) - value).abs().max()) <= step / 2 * (1 + 1e-5)
    again = encode_update(tensors, config, seed=1)
    assert all(again[name].data == record[name].data for name in small)  # deterministic
    assert again["conv.weight"].data != record["conv.weight"].data
    eight = encode_update(tensors, CodecConfig(bits=8, method=U, stochastic=True, float_bits=8))
    assert eight["conv.weight"].stype == f"{grid};bits=8;block=256;rounding=stochastic"
    assert eight["norm.weight"].stype == f"{grid};bits=8;block=256;rounding=nearest"
    decode_update(eight, spec(tensors), bits=8)
    for bits in [32, 16]:  # every float tensor at that width
        wide = encode_update(tensors, CodecConfig(bits=bits, float_bits=8))
        assert wide["norm.weight"].stype == f"fedland.codec/3;method=float;bits={bits}"


# -- the stype -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stype", "expected"),
    [
        ("fedland.codec/3;method=raw", Encoding("raw")),
        ("fedland.codec/3;method=float;bits=32", Encoding("float", 32)),
        ("fedland.codec/3;method=float;bits=16", Encoding("float", 16)),
        (
            "fedland.codec/3;method=uniform;bits=8;block=4096;rounding=nearest",
            Encoding(U, 8, 4096, False),
        ),
        (
            "fedland.codec/3;method=uniform;bits=4;block=256;rounding=stochastic",
            Encoding(U, 4, 256, True),
        ),
        (
            "fedland.codec/3;method=uniform;bits=1;block=65535;rounding=stochastic",
            Encoding(U, 1, 65535, True),
        ),
        ("fedland.codec/3;method=lloyd;bits=3;block=1", Encoding("lloyd", 3, 1)),
        (
            "fedland.codec/3;method=eden;bits=2;block=512;scale=unbiased",
            Encoding("eden", 2, 512, True),
        ),
        ("fedland.codec/3;method=eden;bits=1;block=256;scale=ls", Encoding("eden", 1, 256)),
        ("fedland.codec/3;method=qsgd;bits=4;block=512", Encoding("qsgd", 4, 512)),
        ("fedland.codec/3;method=sign;bits=1", Encoding("sign", 1)),
        ("fedland.codec/3;method=topk;bits=2", Encoding("topk", 2)),
        ("fedland.codec/3;method=nf4;bits=4;block=64", Encoding("nf4", 4, 64)),
        ("fedland.codec/3;method=fp4;bits=4;block=64", Encoding("fp4", 4, 64)),
        ("fedland.codec/3;method=blockwise8;bits=8;block=4096", Encoding("blockwise8", 8, 4096)),
    ],
)
def test_every_kind_of_stype_round_trips(stype, expected):  # fmt: skip
    encoding = parse_stype(stype)
    assert encoding == expected
    assert encoding.stype == stype
    assert expected.stype == stype


def test_encoder_states_each_kind_in_the_stype():
    record = encode_update(update(), CodecConfig(bits=2, block_size=100))
    assert {name: array.stype for name, array in record.items()} == {
        "conv.weight": "fedland.codec/3;method=lloyd;bits=2;block=100",
        "conv2.weight": "fedland.codec/3;method=lloyd;bits=2;block=100",
        "norm.weight": "fedland.codec/3;method=float;bits=16",
        "small.weight": "fedland.codec/3;method=float;bits=16",
        "norm.num_batches_tracked": "fedland.codec/3;method=raw",
        "index": "fedland.codec/3;method=raw",
    }
    for array in record.values():
        assert parse_stype(array.stype).stype == array.stype


Q = "{};method=uniform;bits=4;block=256;rounding=nearest"  # conv.weight's stype in `valid()`
KEYS = "takes the keys"
HOSTILE_STYPES = {
    "previous version": ("conv.weight", "fedland.codec/2;bits=4", "version"),
    "future version": ("conv.weight", Q.replace("{}", "fedland.codec/4"), "version"),
    "foreign": ("conv.weight", "numpy.ndarray", "not 'fedland.codec/3'"),
    "prefix case": ("conv.weight", Q.replace("{}", "Fedland.codec/3"), "not"),
    "prefix only": ("conv.weight", "{}", "lacks method"),
    "empty field": ("conv.weight", "{};", "not key=value"),
    "trailing separator": ("conv.weight", Q + ";", "not key=value"),
    "space": ("conv.weight", Q.replace(";method", "; method"), "lacks method"),
    "unknown key": ("conv.weight", Q + ";scale=bf16", KEYS),
    "repeated key": ("conv.weight", Q + ";bits=4", "repeated"),
    "unknown method": ("conv.weight", "{};method=zip;bits=4", "method 'zip'"),
    "missing bits": ("conv.weight", "{};method=uniform;block=256;rounding=nearest", KEYS),
    "missing block": ("conv.weight", "{};method=uniform;bits=4;rounding=nearest", KEYS),
    "missing rounding": ("conv.weight", "{};method=uniform;bits=4;block=256", KEYS),
    "wrong order": ("conv.weight", "{};method=uniform;bits=4;rounding=nearest;block=256", KEYS),
    "method last": ("conv.weight", "{};bits=4;block=256;rounding=nearest;method=uniform", KEYS),
    "raw and bits": ("conv.weight", "{};method=raw;bits=4", KEYS),
    "raw with a value": ("index", "{};method=raw;raw=1", KEYS),
    "non-integer bits": ("conv.weight", Q.replace("bits=4", "bits=four"), "bits='four'"),
    "float bits": ("conv.weight", Q.replace("bits=4", "bits=4.0"), "bits='4.0'"),
    "signed bits": ("conv.weight", Q.replace("bits=4", "bits=+4"), "bits='\\+4'"),
    "leading zero": ("conv.weight", Q.replace("bits=4", "bits=04"), "bits='04'"),
    "empty bits": ("conv.weight", Q.replace("bits=4", "bits="), "bits=''"),
    "non-ASCII digit": ("conv.weight", Q.replace("bits=4", "bits=\u0664"), "bits="),
    "huge bits": ("conv.weight", Q.replace("bits=4", "bits=" + "9" * 5000), "bits="),
    "bits not allowed": ("conv.weight", Q.replace("bits=4", "bits=5"), "bits=5"),
    "bits of zero": ("conv.weight", Q.replace("bits=4", "bits=0"), "bits='0'"),
    "sign at 4 bits": ("conv.weight", "{};method=sign;bits=4", "bits=4 .* not one of \\(1,\\)"),
    "qsgd at 1 bit": ("conv.weight", "{};method=qsgd;bits=1;block=256", "bits=1 .* not one"),
    "block 0": ("conv.weight", Q.replace("block=256", "block=0"), "block='0'"),
    "block above 65535": ("conv.weight", Q.replace("block=256", "block=65536"), "65535"),
    "negative block": ("conv.weight", Q.replace("block=256", "block=-1"), "block='-1'"),
    "other block": ("conv.weight", Q.replace("block=256", "block=255"), "imply"),
    "eden odd block": ("conv.weight", "{};method=eden;bits=4;block=255;scale=ls", "power of two"),
    "nf4 other block": ("conv.weight", "{};method=nf4;bits=4;block=256", "blocks of 64"),
    "unknown rounding": ("conv.weight", Q.replace("nearest", "Nearest"), "rounding 'Nearest'"),
    "unknown scale": ("conv.weight", "{};method=eden;bits=4;block=256;scale=min", "scale 'min'"),
    "other bits": ("conv.weight", Q.replace("bits=4", "bits=2"), "imply"),
    "block at 16 bits": ("norm.weight", "{};method=float;bits=16;block=256", KEYS),
    "rounding at 32 bits": ("norm.weight", "{};method=float;bits=32;rounding=nearest", KEYS),
    "32 bits for float16": ("norm.weight", "{};method=float;bits=32", "imply"),
    "64 bits": ("norm.weight", "{};method=float;bits=64", "bits=64"),
    "raw float": ("norm.weight", "{};method=raw", "raw encoding for float32"),
    "bits of integer": ("index", "{};method=float;bits=32", "integers travel raw"),
    "quantized integer": ("index", "{};method=uniform;bits=8;block=256;rounding=nearest", "raw"),
}


@pytest.mark.parametrize("case", list(HOSTILE_STYPES))
def test_hostile_stypes_raise_codec_error_naming_the_tensor(case):
    name, stype, reason = HOSTILE_STYPES[case]
    with pytest.raises(CodecError, match=re.escape(repr(name)) + ".*" + reason) as error:
        decode_update(with_stype(valid(), name, stype))
    assert len(str(error.value)) < 500  # a hostile stype is quoted, not copied


def test_v1_stype_is_an_unsupported_version():
    with pytest.raises(CodecError, match="'w': unsupported codec version .*fedland.codec/1"):
        decode_update(
            with_stype(encode_update({"w": torch.ones(3)}, CodecConfig(32)), "w", "fedland.codec/1")
        )


@pytest.mark.parametrize("stype", [None, 2, b"fedland.codec/3;method=raw"])
def test_a_stype_that_is_not_a_string_is_refused(stype):
    with pytest.raises(ValueError, match="not a string"):
        parse_stype(stype)


# -- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        CodecConfig(
            bits=bits, method=U, block_size=block, float_bits=float_bits, min_quantize_size=size
        )
        for bits in BITS
        for block, float_bits, size in [
            (256, 16, 1024),
            (100, 32, 0),
            (65535, 16, 5000),
            (256, 8, 1024),
            (7, 8, 5000),
        ]
    ],
    ids=str,
)
def test_payload_bytes_match_the_formula(config):
    tensors = update()
    record = encode_update(tensors, config)
    assert payload_bytes(record) == sum(len(array.data) for array in record.values())
    assert payload_bytes(record) == expected_payload_bytes(spec(tensors), config)
    assert payload_bytes(record) == wire_bytes(tensors, config)


def wire_bytes(tensors, config: CodecConfig) -> int:
    """The documented layout: integers raw; float tensors of 2+ dims with at least
    min_quantize_size values at the uplink width, other floats at float_bits; a quantized
    tensor is one bfloat16 scale per block plus its codes packed bits to a byte."""
    total = 0
    for value in tensors.values():
        count = value.numel()
        if not value.is_floating_point():
            total += count * value.element_size()
            continue
        large = value.dim() >= 2 and count >= config.min_quantize_size
        width = config.bits if config.bits >= 16 or large else config.float_bits
        if width >= 16:
            total += count * width // 8
        else:
            total += 2 * math.ceil(count / config.block_size) + math.ceil(count * width / 8)
    return total


def test_a_four_bit_update_has_the_size_worked_out_by_hand():
    # conv.weight: 4608 values in 18 blocks, conv2.weight: 2000 in 8; the rest as float16
    # (norm.weight 32, small.weight 144 values) or raw integers (an int64, ten int32).
    expected = (2 * 18 + 4608 // 2) + (2 * 8 + 2000 // 2) + 2 * 32 + 2 * 144 + 8 + 4 * 10
    for method in ("uniform", "lloyd"):  # the same layout: bfloat16 scales, packed codes
        record = encode_update(update(), CodecConfig(bits=4, method=method))
        assert payload_bytes(record) == expected == 3756


def test_fp32_bytes_counts_floats_at_4_bytes_and_integers_raw():
    tensors = update()
    floats = sum(v.numel() for v in tensors.values() if v.is_floating_point())
    assert fp32_bytes(tensors) == 4 * floats + 8 + 4 * 10
    assert fp32_bytes(encode_update(tensors, CodecConfig(bits=1))) == fp32_bytes(tensors)


@pytest.mark.parametrize("float_bits", [16, 8])
@pytest.mark.parametrize("bits", BITS)
def test_dunet_payload_matches_the_formula(bits, float_bits):
    delta = {
        name: torch.randn(value.shape) * 1e-3
        if value.is_floating_point()
        else torch.zeros(value.shape, dtype=value.dtype)
        for name, value in dunet_state(SMALL_DUNET).items()
    }
    config = CodecConfig(bits=bits, float_bits=float_bits)
    expected = expected_payload_bytes(spec(delta), config)
    assert payload_bytes(encode_update(delta, config)) == expected


def within_goal(model: DUNetConfig, bits: int) -> bool:
    state = dunet_state(model)
    size = expected_payload_bytes(spec(state), CodecConfig(bits=bits))
    return size / fp32_bytes(state) <= bits / 32 + 0.02


@pytest.mark.parametrize("bits", BITS)
def test_paper_dunet_payload_is_within_bits_over_32_plus_2_percent(bits):
    assert within_goal(PAPER_DUNET, bits)


@pytest.mark.parametrize("bits", [32, 16, 8])
def test_small_dunet_payload_is_within_bits_over_32_plus_2_percent(bits):
    """Below 8 bits a small DU-Net misses the goal: its BatchNorm vectors (4.8% of its
    floats) travel as float16, 2.4% of the float32 payload on their own."""
    assert within_goal(SMALL_DUNET, bits)


# NVIDIA FLARE's quantizer keeps its metadata out of the payload it reports: float16 is 50%
# and blockwise 8-bit 25.03% of float32. With the encoding in the stype, so does this codec.


def test_16_bits_is_exactly_half_of_float32():
    floats = {name: value for name, value in update().items() if value.is_floating_point()}
    for tensors in [floats, paper_float_state()]:
        record = encode_update(tensors, CodecConfig(bits=16))
        assert payload_bytes(record) == fp32_bytes(tensors) // 2 == fp32_bytes(tensors) / 2


def test_paper_dunet_at_8_bits_is_no_larger_than_flare_blockwise_8_bit():
    state = paper_float_state()
    fp32 = fp32_bytes(state)
    large = CodecConfig(bits=8, float_bits=8, block_size=4096)
    assert expected_payload_bytes(spec(state), large) / fp32 <= 0.2503  # 25.0184%
    # One bfloat16 scale per 256 codes costs 25% x 2/256 = 0.195% on its own: 25.1% at the
    # default block size is out of reach of this format.
    default = CodecConfig(bits=8, float_bits=8)
    assert expected_payload_bytes(spec(state), default) / fp32 <= 0.25 * (1 + 2 / 256) + 0.0001
    assert payload_bytes(encode_update(state, large)) == expected_payload_bytes(spec(state), large)


def test_small_dunet_at_1_bit_with_8_bit_floats_is_over_20_times_smaller_than_float32():
    model = DUNetConfig(
        num_unets=2, order=1, num_landmarks=68, width=32, growth=16, neck=4, input_size=64
    )
    state = float_state(build_model(model))
    config = CodecConfig(bits=1, stochastic=False, float_bits=8)
    record = encode_update(state, config)
    assert fp32_bytes(state) / payload_bytes(record) >= 20  # 22.3x


# -- error feedback ------------------------------------------------------------------------


@pytest.mark.parametrize("float_bits", [16, 8])
def test_error_feedback_carries_the_residual_across_rounds(float_bits):
    config = CodecConfig(bits=1, float_bits=float_bits)
    residual = None
    true_sum = {name: torch.zeros_like(v) for name, v in update().items()}
    sent_sum = {name: torch.zeros_like(v) for name, v in update().items()}
    for _ in range(10):
        delta = update()
        record, residual = encode_with_feedback(delta, residual, config)
        decoded = decode_update(record)
        for name in delta:
            true_sum[name] += delta[name]
            sent_sum[name] += decoded[name]
    assert set(residual) == {"conv.weight", "conv2.weight", "norm.weight", "small.weight"}
    for name, value in residual.items():
        torch.testing.assert_close(sent_sum[name] + value, true_sum[name], rtol=1e-6, atol=1e-5)
        assert value.abs().max() > 0  # float16 or 8-bit rounding is fed back too
    assert torch.equal(sent_sum["index"], true_sum["index"])


def test_with_error_feedback_the_one_bit_running_sum_tracks_the_true_sum():
    config = CodecConfig(bits=1)
    drift = torch.randn(32, 32, 3, 3) * 1e-3
    residual = None
    true_sum, with_feedback, without = (torch.zeros_like(drift) for _ in range(3))
    for _ in range(40):
        delta = {"w": drift + torch.randn_like(drift) * 1e-3}
        record, residual = encode_with_feedback(delta, residual, config)
        true_sum += delta["w"]
        with_feedback += decode_update(record)["w"]
        without += decode_update(encode_update(delta, config))["w"]
    error = float((with_feedback - true_sum).norm() / true_sum.norm())
    error_without = float((without - true_sum).norm() / true_sum.norm())
    assert error < 0.15 and error < error_without / 3


def test_error_feedback_rejects_a_mismatched_residual_and_stochastic_one_bit():
    config = CodecConfig(bits=2)
    _, residual = encode_with_feedback(update(), None, config)
    with pytest.raises(ValueError, match="norm.weight"):
        encode_with_feedback(update(), {**residual, "norm.weight": torch.zeros(3)}, config)
    with pytest.raises(ValueError, match="extra"):
        encode_with_feedback(update(), {**residual, "extra": torch.zeros(3)}, config)
    with pytest.raises(ValueError, match="stochastic=False"):
        encode_with_feedback(update(), None, CodecConfig(bits=1, method=U, stochastic=True))
    encode_with_feedback(update(), None, CodecConfig(bits=1, method="eden", stochastic=True))


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("bits", 5),
        ("bits", 64),
        ("method", "zip"),
        ("block_size", 0),
        ("block_size", 65536),
        ("float_bits", 4),
        ("float_bits", 64),
        ("min_quantize_size", -1),
        ("stochastic", 1),
    ],
)
def test_invalid_settings_name_the_setting(setting, value):
    with pytest.raises(ValueError, match=setting):
        CodecConfig(**{"bits": 4, setting: value})


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"method": "sign", "bits": 4}, "sign encodes at \\(1,\\) bits, not 4"),
        ({"method": "qsgd", "bits": 1}, "qsgd encodes at \\(2, 3, 4, 8\\) bits, not 1"),
        ({"method": "nf4", "bits": 2}, "nf4 encodes at \\(4,\\) bits"),
        ({"method": "eden", "bits": 2, "block_size": 300}, "power of two, got 300"),
    ],
)
def test_a_method_refuses_widths_and_blocks_it_does_not_define(settings, reason):
    with pytest.raises(ValueError, match=reason):
        CodecConfig(**settings)
    CodecConfig(**{**settings, "bits": 16})  # float widths are every method's


def test_unsupported_input_is_refused_when_encoding():
    with pytest.raises(ValueError, match="'mask': dtype torch.bool"):
        encode_update({"mask": torch.ones(3, dtype=torch.bool)}, CodecConfig(bits=8))
    for bits in [32, 16, 4, 1]:
        with pytest.raises(ValueError, match="'w': values must be finite"):
            encode_update({"w": torch.full((40, 40), float("nan"))}, CodecConfig(bits=bits))
    with pytest.raises(ValueError, match="'v': .* float16 range"):
        encode_update({"v": torch.tensor([1e6])}, CodecConfig(bits=4))


def test_the_first_bad_tensor_is_named_when_several_are():
    conv = {"conv.weight": torch.full((40, 40), float("inf"))}  # quantized at 4 bits
    norm = {"norm.weight": torch.ones(2), "norm.bias": torch.tensor([float("nan")])}
    for tensors, first in [({**conv, **norm}, "conv.weight"), ({**norm, **conv}, "norm.bias")]:
        with pytest.raises(ValueError, match=f"'{first}': values must be finite"):
            encode_update(tensors, CodecConfig(bits=4))
    record = encode_update(update(), CodecConfig(bits=4, method=U))
    broken = with_data(record, "norm.weight", lambda d: b"\x00\x7c" + d[2:])  # float16 inf
    broken = with_data(broken, "small.weight", lambda d: b"\x00\x7c" + d[2:])
    with pytest.raises(CodecError, match="'norm.weight': non-finite values"):
        decode_update(broken)
    with pytest.raises(CodecError, match="'conv.weight': 0 bytes"):
        decode_update(with_data(broken, "conv.weight", lambda d: b""))


def valid() -> ArrayRecord:
    return encode_update(update(), CodecConfig(bits=4, method=U))


def with_first_scale(record: ArrayRecord, name: str, scale: float) -> ArrayRecord:
    data = record[name].data
    stored = torch.tensor([scale], dtype=torch.bfloat16).view(torch.int16).numpy().tobytes()
    return replace(record, name, data=stored + data[2:])


def with_data(record: ArrayRecord, name: str, edit) -> ArrayRecord:
    return replace(record, name, data=edit(record[name].data))


HOSTILE = {
    "unknown stype": ("conv.weight", lambda r, n: replace(r, n, stype="numpy.ndarray")),
    "unknown dtype": ("conv.weight", lambda r, n: replace(r, n, dtype="complex64")),
    "negative shape": ("conv.weight", lambda r, n: replace(r, n, shape=(-1, 4))),
    "empty data": ("conv.weight", lambda r, n: replace(r, n, data=b"")),
    "odd float16 bytes": ("norm.weight", lambda r, n: with_data(r, n, lambda d: d[:3])),
    "scales only": ("conv2.weight", lambda r, n: with_data(r, n, lambda d: d[:16])),
    "truncated payload": ("conv.weight", lambda r, n: with_data(r, n, lambda d: d[:-1])),
    "padded payload": ("conv.weight", lambda r, n: with_data(r, n, lambda d: d + b"\0")),
    "truncated raw": ("index", lambda r, n: with_data(r, n, lambda d: d[:-4])),
    "bits not allowed": ("conv.weight", lambda r, n: with_stype(r, n, Q.replace("=4", "=5"))),
    "bits of raw float": ("norm.weight", lambda r, n: with_stype(r, n, "{};method=float;bits=64")),
    "bits of integer": ("index", lambda r, n: with_stype(r, n, "{};method=uniform;bits=8")),
    "block size 0": ("conv.weight", lambda r, n: with_stype(r, n, Q.replace("256", "0"))),
    "other block size": ("conv.weight", lambda r, n: with_stype(r, n, Q.replace("256", "255"))),
    "version 1": ("conv.weight", lambda r, n: with_stype(r, n, "fedland.codec/1")),
    "NaN scale": ("conv.weight", lambda r, n: with_first_scale(r, n, float("nan"))),
    "infinite scale": ("conv.weight", lambda r, n: with_first_scale(r, n, float("inf"))),
    "negative scale": ("conv.weight", lambda r, n: with_first_scale(r, n, -1.0)),
    "overflowing scale": ("conv.weight", lambda r, n: with_first_scale(r, n, 3e38)),
    "code out of range": ("conv.weight", lambda r, n: with_data(r, n, lambda d: d[:-1] + b"\xff")),
    "infinite raw value": (
        "norm.weight",
        lambda r, n: with_data(r, n, lambda d: b"\x00\x7c" + d[2:]),
    ),
}


# What the receiver says of each, after the tensor's name.
REASONS = {
    "unknown stype": "serialization type 'numpy.ndarray' is not 'fedland.codec/3'",
    "unknown dtype": "dtype 'complex64' is not one of float64, float32, float16, bfloat16, "
    "int64, int32, int16, int8, uint8",
    "negative shape": "shape (-1, 4) is not a tuple of non-negative integers",
    "empty data": "0 bytes where stype and shape imply 2340 (truncated or padded)",
    "odd float16 bytes": "3 bytes where stype and shape imply 64 (truncated or padded)",
    "scales only": "16 bytes where stype and shape imply 1016 (truncated or padded)",
    "truncated payload": "2339 bytes where stype and shape imply 2340 (truncated or padded)",
    "padded payload": "2341 bytes where stype and shape imply 2340 (truncated or padded)",
    "truncated raw": "36 bytes where stype and shape imply 40 (truncated or padded)",
    "bits not allowed": "bits=5 in serialization type "
    "'fedland.codec/3;method=uniform;bits=5;block=256;rounding=nearest' is not one of "
    "(1, 2, 3, 4, 8)",
    "bits of raw float": "bits=64 in serialization type 'fedland.codec/3;method=float;bits=64' "
    "is not one of (32, 16)",
    "bits of integer": "serialization type 'fedland.codec/3;method=uniform;bits=8': method "
    "uniform takes the keys ['method', 'bits', 'block', 'rounding'], in order",
    "block size 0": "block='0' in serialization type "
    "'fedland.codec/3;method=uniform;bits=4;block=0;rounding=nearest' is not a positive "
    "decimal integer below 10**6",
    "other block size": "2340 bytes where stype and shape imply 2342 (truncated or padded)",
    "version 1": "unsupported codec version in serialization type 'fedland.codec/1': this "
    "receiver reads 'fedland.codec/3'",
    "NaN scale": "scales that are negative or not finite",
    "infinite scale": "scales that are negative or not finite",
    "negative scale": "scales that are negative or not finite",
    "overflowing scale": "scales too large: decoded values are not finite",
    "code out of range": "codes above 14, the largest this 4-bit format uses",
    "infinite raw value": "non-finite values",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_records_raise_codec_error_naming_the_tensor_and_the_problem(case):
    name, corrupt = HOSTILE[case]
    with pytest.raises(CodecError) as error:
        decode_update(corrupt(valid(), name))
    assert str(error.value) == f"{name!r}: {REASONS[case]}"


def test_records_are_checked_against_the_expected_model():
    tensors = update()
    record = valid()
    expected = spec(tensors)
    cases = {
        "norm.weight": {**expected, "norm.weight": ((33,), torch.float32)},
        "conv.weight": {**expected, "conv.weight": ((32, 16, 3, 3), torch.float16)},
        "index": {**expected, "index": ((10,), torch.int64)},
        "missing.weight": {**expected, "missing.weight": ((1,), torch.float32)},
        "conv2.weight": {k: v for k, v in expected.items() if k != "conv2.weight"},
    }
    for name, wanted in cases.items():
        with pytest.raises(CodecError, match=re.escape(repr(name))):
            decode_update(record, wanted)
    decode_update(record, expected, bits=4)


def test_a_width_other_than_the_expected_bits_is_refused():
    record = valid()
    with pytest.raises(CodecError, match="'conv.weight'.*4 where .* 8 bits"):
        decode_update(record, bits=8)
    with pytest.raises(CodecError, match="'conv.weight'.*32 where .* 16 bits"):
        decode_update(encode_update(update(), CodecConfig(bits=32)), bits=16)
    decode_update(encode_update(update(), CodecConfig(bits=4, float_bits=32)), bits=4)
    eight = encode_update(update(), CodecConfig(bits=1, float_bits=8))
    decode_update(eight, spec(update()), bits=1)  # BatchNorm and small tensors at 8 bits
    half = encode_update(update(), CodecConfig(bits=16))
    half["norm.weight"] = eight["norm.weight"]
    with pytest.raises(CodecError, match="'norm.weight'.*8 where .* 16 bits"):
        decode_update(half, bits=16)
    with pytest.raises(ValueError, match="bits"):
        decode_update(record, bits=5)


@pytest.mark.parametrize("bits", [8, 4, 1, 16, 32])
def test_fuzzed_bytes_decode_to_finite_tensors_or_raise_codec_error(bits):
    tensors = update()
    record = encode_update(tensors, CodecConfig(bits=bits, method=U))
    rng = random.Random(bits)
    decoded_cleanly = 0
    for _ in range(300):
        name = rng.choice(list(record))
        data = bytearray(record[name].data)
        mutation = rng.randrange(4)
        if mutation == 0:
            data = data[: rng.randrange(len(data))]
        elif mutation == 1:
            data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        else:
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            decoded = decode_update(replace(record, name, data=bytes(data)), spec(tensors), bits)
        except CodecError as error:
            assert repr(name) in str(error)
            continue
        decoded_cleanly += 1
        for key, value in decoded.items():
            assert value.shape == tensors[key].shape
            if value.is_floating_point():
                assert torch.isfinite(value).all()
    assert decoded_cleanly > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bits", BITS)
def test_cuda_tensors_encode_to_the_same_bytes_as_cpu_tensors(bits):
    tensors = update()
    config = CodecConfig(bits=bits)
    on_cuda = {name: value.cuda() for name, value in tensors.items()}
    cpu, cpu_values = encode_and_reconstruct(tensors, config)
    cuda, cuda_values = encode_and_reconstruct(on_cuda, config)
    assert all(cpu[name].data == cuda[name].data for name in tensors)
    assert all(torch.equal(cuda_values[name].cpu(), cpu_values[name]) for name in cpu_values)


def test_a_receiver_that_knows_the_config_rejects_any_other_encoding():
    tensors = update()
    sent = CodecConfig(bits=4, method=U, block_size=128, stochastic=True)
    record = encode_update(tensors, sent)
    decoded = decode_update(record, spec(tensors), config=sent)
    assert all(torch.equal(decoded[k], v) for k, v in decode_update(record).items())
    others = [
        CodecConfig(bits=4, method=U, stochastic=True),
        CodecConfig(bits=4, method=U, block_size=128),
        CodecConfig(bits=4, block_size=128),
    ]
    for other in others:
        with pytest.raises(CodecError, match="where this run sends"):
            decode_update(record, spec(tensors), config=other)


def test_residual_survives_a_flower_record_round_trip():
    _, residual = encode_with_feedback(update(), None, CodecConfig(bits=2))
    record = to_record(residual)
    assert all(array.stype == "numpy.ndarray" for array in record.values())
    state = RecordDict({"codec.residual": record})
    restored = from_record(state["codec.residual"])
    assert restored.keys() == residual.keys()
    for name, value in residual.items():
        assert restored[name].dtype == torch.float32 and torch.equal(restored[name], value)
    encode_with_feedback(update(), restored, CodecConfig(bits=2))
    integers = {"count": torch.tensor(7, dtype=torch.int64)}
    assert torch.equal(from_record(to_record(integers))["count"], integers["count"])

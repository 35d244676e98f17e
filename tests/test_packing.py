import pytest
import torch

from fedland.quant import pack_bits, packed_size, unpack_bits


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 1001])
def test_pack_unpack_round_trip_for_every_width(bits, count):
    codes = torch.randint(0, 2**bits, (count,), dtype=torch.uint8)
    packed = pack_bits(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.numel() == packed_size(count, bits) == (count * bits + 7) // 8
    assert torch.equal(unpack_bits(packed, bits, count), codes)


def test_bit_order_is_little_endian():
    codes = torch.tensor([1, 2, 3, 0], dtype=torch.uint8)
    assert pack_bits(codes, 2).tolist() == [0b00111001]
    assert pack_bits(torch.tensor([5, 3], dtype=torch.uint8), 3).tolist() == [0b011101]


def test_multi_dimensional_codes_are_flattened():
    codes = torch.randint(0, 8, (3, 4, 5), dtype=torch.uint8)
    assert torch.equal(unpack_bits(pack_bits(codes, 3), 3, 60).view(3, 4, 5), codes)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="1 to 8"):
        pack_bits(torch.zeros(4, dtype=torch.uint8), 9)
    with pytest.raises(TypeError, match="uint8"):
        pack_bits(torch.zeros(4, dtype=torch.int32), 4)
    with pytest.raises(ValueError, match="need 5"):
        unpack_bits(torch.zeros(4, dtype=torch.uint8), 4, 10)

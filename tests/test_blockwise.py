import pytest
import torch

from fedland.quant import (
    dequantize_blockwise,
    max_code,
    max_level,
    quantize_blockwise,
    round_up_bfloat16,
)

BLOCK = 64


def round_trip(values, bits, stochastic, block=BLOCK, generator=None):
    codes, scales = quantize_blockwise(values, bits, block, stochastic, generator)
    return dequantize_blockwise(codes, scales, bits, block, values.numel()), codes, scales


def per_block(values, block=BLOCK):
    return torch.nn.functional.pad(values, (0, -values.numel() % block)).view(-1, block)


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("bits", range(1, 9))
def test_each_block_uses_symmetric_levels_of_its_scale(bits, stochastic):
    values = torch.randn(10 * BLOCK + 17) * torch.rand(1) * 10
    decoded, codes, scales = round_trip(values, bits, stochastic)
    assert codes.dtype == torch.uint8 and codes.shape == values.shape
    assert scales.dtype == torch.bfloat16 and scales.numel() == 11
    assert int(codes.max()) <= max_code(bits)
    scale = scales.float().repeat_interleave(BLOCK)[: values.numel()]
    if bits == 1:
        allowed = torch.tensor([-1.0, 1.0])
    else:
        allowed = torch.arange(-max_level(bits), max_level(bits) + 1, dtype=torch.float32)
    assert torch.isin(decoded / scale, allowed).all()
    for row in decoded.split(BLOCK):
        assert row.unique().numel() <= (2 if bits == 1 else 2**bits - 1)


@pytest.mark.parametrize("bits", range(2, 9))
def test_nearest_rounding_error_is_at_most_half_a_step(bits):
    values = torch.randn(20 * BLOCK)
    decoded, _, scales = round_trip(values, bits, stochastic=False)
    error = per_block(decoded - values).abs()
    assert (error <= scales.float().unsqueeze(1) * (0.5 + 1e-6)).all()


def test_one_bit_nearest_is_sign_times_mean_magnitude_of_the_real_values():
    values = torch.randn(3 * BLOCK + 5)
    values[7] = 0.0
    decoded, _, scales = round_trip(values, 1, stochastic=False)
    blocks = [values[i : i + BLOCK] for i in range(0, values.numel(), BLOCK)]
    means = torch.stack([block.abs().mean() for block in blocks])
    assert torch.equal(scales, round_up_bfloat16(means))
    expected = torch.where(values >= 0, 1.0, -1.0) * scales.float().repeat_interleave(BLOCK)[:197]
    assert torch.equal(decoded, expected)
    assert decoded[7] > 0


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_stochastic_rounding_is_unbiased(bits):
    values = torch.randn(8 * BLOCK) * torch.linspace(0.01, 2.0, 8 * BLOCK)
    draws = 4000
    # Block-aligned copies share their scales; each copy gets independent noise.
    generator = torch.Generator().manual_seed(1)
    decoded, _, scales = round_trip(values.repeat(draws), bits, True, generator=generator)
    mean = decoded.view(draws, -1).mean(dim=0)
    scale = scales[:8].float().repeat_interleave(BLOCK)
    spread = scale * (1.0 if bits == 1 else 0.5)  # largest standard deviation of one draw
    assert ((mean - values).abs() <= 6 * spread / draws**0.5).all()
    assert abs(float((mean - values).mean())) <= 6 * float(spread.mean()) / (draws * 512) ** 0.5
    nearest, _, _ = round_trip(values, bits, stochastic=False)
    assert (mean - values).abs().mean() < (nearest - values).abs().mean() / 4


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("bits", range(1, 9))
def test_a_block_of_zeros_has_scale_zero_and_decodes_to_zeros(bits, stochastic):
    values = torch.randn(3 * BLOCK)
    values[BLOCK : 2 * BLOCK] = 0.0
    decoded, _, scales = round_trip(values, bits, stochastic)
    assert scales[1] == 0
    assert torch.isfinite(decoded).all()
    assert torch.equal(decoded[BLOCK : 2 * BLOCK], torch.zeros(BLOCK))


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_bfloat16_scale_is_never_below_the_exact_one(bits, stochastic):
    values = torch.logspace(-30, 30, 50 * BLOCK) * torch.randn(50 * BLOCK).sign()
    _, codes, scales = round_trip(values, bits, stochastic)
    blocks = per_block(values).abs()
    if bits == 1 and not stochastic:
        exact = blocks.mean(dim=1)
    else:
        exact = blocks.amax(dim=1) / max_level(bits)
    stored = scales.float()
    assert (stored >= exact).all()
    assert (stored <= exact * (1 + 2**-7)).all()
    assert (stored > 0).all()  # float16 would have flushed the smallest blocks to zero
    assert int(codes.max()) <= max_code(bits)


def test_round_up_bfloat16_keeps_exact_values_and_special_values():
    exact = torch.tensor([0.0, 1.0, 0.5, 3.0, 2.0**-130, float("inf")])
    assert torch.equal(round_up_bfloat16(exact).float(), exact)
    assert round_up_bfloat16(torch.tensor([1.0 + 2**-20])).float() == 1 + 2**-7
    assert round_up_bfloat16(torch.tensor([3.4e38])).float().isinf()
    assert round_up_bfloat16(torch.tensor([float("nan")])).isnan().all()


def test_same_generator_seed_gives_the_same_codes_and_another_seed_others():
    values = torch.randn(5 * BLOCK)
    first = quantize_blockwise(values, 4, BLOCK, True, torch.Generator().manual_seed(3))
    second = quantize_blockwise(values, 4, BLOCK, True, torch.Generator().manual_seed(3))
    other = quantize_blockwise(values, 4, BLOCK, True, torch.Generator().manual_seed(4))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(other[1], first[1])  # scales do not depend on the noise
    assert not torch.equal(other[0], first[0])


def test_empty_input_gives_empty_codes_and_scales():
    decoded, codes, scales = round_trip(torch.zeros(0), 4, stochastic=True)
    assert codes.numel() == scales.numel() == decoded.numel() == 0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="1 to 8"):
        quantize_blockwise(torch.randn(8), 9, BLOCK)
    with pytest.raises(ValueError, match="block size"):
        quantize_blockwise(torch.randn(8), 4, 0)
    with pytest.raises(ValueError, match="block size"):
        dequantize_blockwise(torch.zeros(8, dtype=torch.uint8), torch.ones(1), 4, 0, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_cuda_matches_cpu_for_nearest_rounding(bits):
    values = torch.randn(7 * BLOCK + 3)
    cpu = quantize_blockwise(values, bits, BLOCK)
    cuda = quantize_blockwise(values.cuda(), bits, BLOCK)
    assert torch.equal(cuda[0].cpu(), cpu[0]) and torch.equal(cuda[1].cpu(), cpu[1])
    decoded = dequantize_blockwise(*cuda, bits, BLOCK, values.numel())
    assert torch.equal(decoded.cpu(), dequantize_blockwise(*cpu, bits, BLOCK, values.numel()))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_stochastic_rounding_draws_independently_for_each_value_of_a_block(bits):
    block, blocks = 256, 40
    level = max_level(bits)
    # Every block: one value at the top of the grid (scale 1) and the rest halfway between
    # two levels, so each of them rounds up with probability 1/2.
    middle = 0.0 if bits == 1 else level - 1.5
    values = torch.full((blocks, block), middle)
    values[:, 0] = float(level)
    generator = torch.Generator().manual_seed(5)
    decoded, codes, scales = round_trip(values.reshape(-1), bits, True, block, generator)
    assert torch.equal(scales.float(), torch.ones(blocks))
    # The mean of each decoded block is close to the block's true mean: one draw per block
    # would move all of it half a level (a whole level at 1 bit) at once.
    spread = (1.0 if bits == 1 else 0.5) / block**0.5  # standard deviation of a block mean
    error = decoded.view(blocks, block).mean(dim=1) - values.mean(dim=1)
    assert (error.abs() <= 6 * spread).all()
    # Within every block, some of the halfway values round up and some down.
    halfway = codes.view(blocks, block)[:, 1:]
    assert (halfway.amax(dim=1) > halfway.amin(dim=1)).all()

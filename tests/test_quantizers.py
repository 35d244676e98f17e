import pytest
import torch

from fedland.quant import dequantize, fake_quantize_weight, quantize_gradient, quantize_weight


def _values_per_filter(weight, bits):
    quantized = quantize_weight(weight, bits).dequantize()
    return [torch.unique(quantized[f]) for f in range(weight.shape[0])]


def test_one_bit_weights_are_two_values_sign_times_mean_magnitude():
    weight = torch.randn(6, 4, 3, 3)
    for f, values in enumerate(_values_per_filter(weight, 1)):
        alpha = weight[f].abs().mean()
        assert values.numel() == 2
        torch.testing.assert_close(values, torch.stack([-alpha, alpha]))
    quantized = quantize_weight(weight, 1).dequantize()
    assert torch.equal(torch.sign(quantized), torch.where(weight >= 0, 1.0, -1.0))


def test_two_bit_weights_are_ternary_with_twn_threshold():
    weight = torch.randn(5, 8, 3, 3)
    quantized = quantize_weight(weight, 2).dequantize()
    for f in range(weight.shape[0]):
        magnitude = weight[f].abs()
        delta = 0.7 * magnitude.mean()
        alpha = magnitude[magnitude > delta].mean()
        values = torch.unique(quantized[f])
        torch.testing.assert_close(values, torch.stack([-alpha, torch.zeros(()), alpha]))
        assert torch.equal(quantized[f] == 0, magnitude <= delta)


@pytest.mark.parametrize("bits", [3, 4, 5, 8])
def test_k_bit_weights_use_2_to_the_k_symmetric_levels_of_step_2_to_1_minus_k(bits):
    weight = torch.rand(2, 64, 16, 16) * 2 - 1  # uniform, so every level is hit
    quantized = quantize_weight(weight, bits)
    assert int(quantized.codes.max()) < 2**bits
    values = quantized.dequantize()
    for f in range(2):
        levels = torch.unique(values[f])
        assert levels.numel() == 2**bits
        torch.testing.assert_close(levels, -levels.flip(0))  # symmetric
        step = weight[f].abs().max() * 2.0 ** (1 - bits)
        torch.testing.assert_close(levels.diff(), torch.full_like(levels.diff(), float(step)))
    assert (values - weight).abs().max() <= weight.abs().max() * 2.0 ** (1 - bits)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_per_tensor_scale_treats_the_tensor_as_one_filter(bits):
    weight = torch.randn(4, 3, 3, 3)
    weight[0] *= 10  # one filter much larger than the others
    quantized = quantize_weight(weight, bits, per_filter=False)
    assert quantized.scale.numel() == 1
    one_filter = quantize_weight(weight.reshape(1, -1), bits).dequantize()
    assert torch.equal(quantized.dequantize(), one_filter.view_as(weight))
    if bits == 4:
        assert quantized.scale.item() == pytest.approx(weight.abs().max().item() / 8)
    per_filter = quantize_weight(weight, bits).dequantize()
    assert not torch.equal(quantized.dequantize()[1:], per_filter[1:])


def test_dequantize_is_the_one_reconstruction():
    weight = torch.randn(3, 2, 3, 3)
    quantized = quantize_weight(weight, 3)
    assert torch.equal(quantized.dequantize(), dequantize(quantized.codes, quantized.scale, 3))


def test_straight_through_gradient_of_weight_quantizer():
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    upstream = torch.randn(4, 3, 3, 3)
    (fake_quantize_weight(weight, 1) * upstream).sum().backward()
    assert torch.equal(weight.grad, upstream)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_stochastic_gradient_rounding_is_unbiased(bits):
    grad = torch.tensor([0.3, -0.0071, 0.00012, -1.0, 0.55])
    draws = torch.stack([quantize_gradient(grad, bits) for _ in range(20000)])
    levels = 2 ** (bits - 1) - 1
    step = 1.0 / levels  # range is 2**ceil(log2(1.0)) = 1
    assert torch.allclose(draws.mean(0), grad, atol=4 * step / (20000**0.5))
    codes = draws / step
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.abs().max() <= levels


def test_gradient_quantization_keeps_small_values_alive_on_average():
    grad = torch.full((100000,), 1e-4)
    grad[0] = 1.0
    quantized = quantize_gradient(grad, 4)
    assert quantized[1:].mean().item() == pytest.approx(1e-4, rel=0.2)
    assert (quantized[1:] != 0).any()


def test_zero_and_non_finite_gradients_pass_through():
    assert torch.equal(quantize_gradient(torch.zeros(3), 4), torch.zeros(3))
    broken = torch.tensor([0.5, float("inf"), -0.25])
    assert quantize_gradient(broken, 4) is broken


def test_stochastic_gradient_rounding_draws_independently_for_each_value():
    rows, columns = 16, 256
    step = 1.0 / 7  # 4 bits: range 1, 7 levels each side
    grad = torch.full((rows, columns), 2.5 * step)  # halfway between two levels
    grad[0, 0] = 1.0
    quantized = quantize_gradient(grad, 4)
    halfway = torch.round(quantized / step).view(-1)[1:]
    assert set(halfway.unique().tolist()) == {2.0, 3.0}
    # one draw per tensor (or per row) would move every value of it, and so its mean, by
    # half a step; independent draws keep each row's mean within a few standard deviations
    error = (quantized - grad).mean(dim=1)
    assert (error.abs() <= 6 * 0.5 * step / columns**0.5).all()
    rounded_up = halfway.eq(3.0).float().mean().item()
    assert rounded_up == pytest.approx(0.5, abs=6 * 0.5 / halfway.numel() ** 0.5)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_a_two_dimensional_weight_has_one_scale_per_row(bits):
    weight = torch.randn(6, 10) * torch.arange(1, 7).float()[:, None]
    quantized = quantize_weight(weight, bits)
    assert quantized.scale.shape == (6,)
    for row in range(6):
        alone = quantize_weight(weight[row : row + 1], bits).dequantize()
        assert torch.equal(quantized.dequantize()[row : row + 1], alone)

import torch
import torch.nn.functional as F

from fedland.quant import QuantConv2d, SavedTensorStore, quantize_gradient, quantize_weight


def _layer(bits: str, kernel: int = 3) -> QuantConv2d:
    return QuantConv2d(8, 6, kernel, padding=kernel // 2, bits=bits, activation_clip=2.0)


def test_full_precision_layer_is_a_plain_convolution():
    layer = _layer("w32a32g32")
    x = torch.rand(2, 8, 10, 10)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight, padding=1))
    assert layer.activation_clip is None


def test_forward_uses_quantized_weights_and_quantized_inputs():
    layer = _layer("w1a4g32")
    x = torch.rand(2, 8, 10, 10) * 3  # part of it above the clip level 2.0
    step = 2.0 / 15
    x_q = torch.round(x.clamp(0, 2.0) / step) * step
    w_q = quantize_weight(layer.weight, 1).dequantize()
    torch.testing.assert_close(layer(x), F.conv2d(x_q, w_q, padding=1))


def test_gradients_are_straight_through_and_clipped_activations_get_none():
    layer = _layer("w2a8g32")
    x = (torch.rand(2, 8, 10, 10) * 3).requires_grad_()
    upstream = torch.randn(2, 6, 10, 10)
    (layer(x) * upstream).sum().backward()

    step = 2.0 / 255
    x_q = (torch.round(x.detach().clamp(0, 2.0) / step) * step).requires_grad_()
    w_q = quantize_weight(layer.weight, 2).dequantize().requires_grad_()
    (F.conv2d(x_q, w_q, padding=1) * upstream).sum().backward()

    assert torch.equal(layer.weight.grad, w_q.grad)  # straight-through to latent, g32 exact
    above = x.detach() > 2.0
    assert torch.equal(x.grad, x_q.grad.masked_fill(above, 0))
    torch.testing.assert_close(layer.activation_clip.grad, x_q.grad[above].sum())  # PACT


def test_low_bit_gradients_lie_on_a_k_bit_grid():
    layer = _layer("w32a32g4", kernel=1)
    layer.activation_clip = None
    x = torch.rand(2, 8, 6, 6, requires_grad=True)
    layer(x).pow(2).sum().backward()
    grad = layer.weight.grad
    step = torch.exp2(torch.ceil(torch.log2(grad.abs().max()))) / 7
    codes = grad / step
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.abs().max() <= 7


def test_quantized_input_is_kept_for_backward_as_uint8_codes():
    layer = _layer("w1a8g8", kernel=1)
    x = (torch.rand(4, 8, 32, 32) * 2.5).requires_grad_()  # some of it above the clip 2.0
    with SavedTensorStore.for_model(layer) as store:
        out = layer(x)
    # uint8 codes and a 1-bit clip mask, instead of a float32 copy (the clip is a parameter)
    assert store.stored_bytes == x.numel() + x.numel() // 8
    upstream = torch.randn_like(out)
    torch.manual_seed(7)
    (out * upstream).sum().backward()

    # backward from the stored codes equals backward from the quantized input itself
    torch.manual_seed(7)
    grad_out = quantize_gradient(upstream, 8)
    step = 2.0 / 255
    x_q = (torch.round(x.detach().clamp(0, 2.0) / step) * step).requires_grad_()
    w_q = quantize_weight(layer.weight, 1).dequantize()
    F.conv2d(x_q, w_q).backward(grad_out)
    above = x.detach() > 2.0
    assert above.any() and not above.all()
    torch.testing.assert_close(x.grad, x_q.grad.masked_fill(above, 0))

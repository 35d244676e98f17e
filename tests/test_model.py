import pytest
import torch

from fedland.model import DUNetConfig, ModelConfigError, build_model, heatmap_loss
from fedland.model.complexity import count_parameters
from fedland.model.norm import BatchNorm2d
from tests.conftest import images


@pytest.mark.parametrize(("unets", "order"), [(1, 0), (2, 0), (2, 1), (3, 1), (4, 2), (4, 3)])
def test_one_heatmap_per_unet_at_a_quarter_of_the_input(tiny, unets, order):
    model = build_model(num_unets=unets, order=order, **tiny)
    outputs = model(images())
    assert len(outputs) == unets
    assert all(o.shape == (2, 5, 16, 16) for o in outputs)
    assert len(model.heads) == unets


def test_input_size_is_configurable(tiny):
    tiny["input_size"] = 128
    outputs = build_model(num_unets=2, order=1, **tiny)(images(size=128))
    assert outputs[-1].shape == (2, 5, 32, 32)


def test_supervised_outputs_are_spread_evenly_and_include_the_last():
    assert DUNetConfig(num_unets=8, num_supervised=1).supervised == (7,)
    assert DUNetConfig(num_unets=8, num_supervised=2).supervised == (3, 7)
    assert DUNetConfig(num_unets=8, num_supervised=4).supervised == (1, 3, 5, 7)
    assert DUNetConfig(num_unets=8).supervised == tuple(range(8))


def test_channel_counts_follow_the_specification():
    cfg = DUNetConfig(num_unets=4, order=2)
    model = build_model(cfg)
    C, k = 128, 32
    for i, unet in enumerate(model.unets):
        coupled = min(i, 2)
        for block in unet.blocks:
            c_in = 2 * C if block.kind == "up" else C
            assert block.dense.bottleneck.conv.in_channels == c_in + coupled * k
            assert block.dense.bottleneck.conv.out_channels == 4 * k
            assert block.dense.conv3x3.conv.out_channels == k
            assert block.dense.conv3x3.conv.kernel_size == (3, 3)
            assert block.ahead.conv.in_channels == c_in + (coupled + 1) * k
            assert block.ahead.conv.out_channels == C
            assert (block.skip is not None) == (block.kind == "down")
    assert [a.conv.in_channels for a in model.unet_adapters] == [2 * C, 3 * C, 3 * C]
    assert model.stem.conv.stride == (2, 2) and model.stem.conv.kernel_size == (7, 7)


def test_parameter_counts_grow_linearly_in_the_number_of_unets():
    counts = [count_parameters(build_model(num_unets=n, order=1)) for n in (2, 4, 8)]
    assert counts[2] - counts[1] == pytest.approx(2 * (counts[1] - counts[0]), rel=0.01)
    # ~31% of an 8-stack hourglass (25.4M parameters), as the paper reports
    assert counts[2] / 25.4e6 == pytest.approx(0.31, abs=0.02)


def _capture_inputs(model):
    """Record, per U-Net and block position, the tensors each dense layer reads."""
    seen: dict[tuple[int, int], tuple] = {}
    features: dict[tuple[int, int], torch.Tensor] = {}
    for i, unet in enumerate(model.unets):
        for p, block in enumerate(unet.blocks):
            block.dense.register_forward_pre_hook(
                lambda _m, args, key=(i, p): seen.__setitem__(key, args)
            )
            block.dense.register_forward_hook(
                lambda _m, _a, out, key=(i, p): features.__setitem__(key, out)
            )
    return seen, features


@pytest.mark.parametrize(("unets", "order"), [(4, 0), (4, 1), (4, 2), (4, 3)])
def test_coupling_reads_exactly_the_previous_k_unets(tiny, unets, order):
    model = build_model(num_unets=unets, order=order, **tiny)  # memory-efficient: parts stay apart
    seen, features = _capture_inputs(model)
    model(images())
    for (i, p), args in seen.items():
        parts = 2 if model.unets[i].blocks[p].kind == "up" else 1
        coupled = args[parts:]
        expected = [features[(j, p)] for j in range(max(0, i - order), i)]
        assert len(coupled) == len(expected) == min(i, order)
        assert all(a is b for a, b in zip(coupled, expected, strict=True))


def test_unet_inputs_are_coupled_to_the_previous_k_inputs(tiny):
    model = build_model(num_unets=4, order=2, **tiny)
    unet_inputs, unet_outputs, adapter_args = [], [], []
    for unet in model.unets:
        unet.register_forward_pre_hook(lambda _m, args: unet_inputs.append(args[0]))
        unet.register_forward_hook(lambda _m, _a, out: unet_outputs.append(out[0]))
    for adapter in model.unet_adapters:
        adapter.register_forward_pre_hook(lambda _m, args: adapter_args.append(args))
    model(images())
    for i in range(1, 4):
        args = adapter_args[i - 1]
        assert args[0] is unet_outputs[i - 1]
        assert list(args[1:]) == unet_inputs[max(0, i - 2) : i]


def test_order_must_be_below_the_number_of_unets(tiny):
    with pytest.raises(ModelConfigError, match="0 <= K < L = 4"):
        build_model(num_unets=4, order=4, **tiny)
    with pytest.raises(ModelConfigError, match="K = -1"):
        build_model(num_unets=4, order=-1, **tiny)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_size": 100}, "multiple of 64"),
        ({"num_unets": 0}, "num_unets must be a positive integer"),
        ({"width": -8}, "width must be a positive integer"),
        ({"num_supervised": 5}, "num_supervised must be between 1"),
        ({"refine": True, "num_unets": 3}, "must be even"),
        ({"refine": True, "num_unets": 4, "order": 2}, "2 built U-Nets"),
        ({"quant_scope": "most"}, "quant_scope must be one of all, 3x3"),
        ({"bits": "w1a8"}, "wXaYgZ"),
        ({"colour": 3}, "unknown model key"),
    ],
)
def test_invalid_configurations_say_what_is_allowed(tiny, overrides, message):
    settings = {"num_unets": 4, "order": 1, **tiny, **overrides}
    with pytest.raises(ValueError, match=message):
        build_model(**settings)


def test_images_of_the_wrong_size_are_rejected(tiny):
    with pytest.raises(ValueError, match=r"\[batch, 3, 64, 64\]"):
        build_model(num_unets=2, **tiny)(images(size=128))


def test_refinement_halves_the_parameters_and_supervises_both_passes(tiny):
    shared = DUNetConfig(num_unets=8, order=1, refine=True)
    unshared = DUNetConfig(num_unets=8, order=1)
    ratio = count_parameters(build_model(shared)) / count_parameters(build_model(unshared))
    assert ratio == pytest.approx(0.5, abs=0.02)
    model = build_model(num_unets=4, order=1, refine=True, **tiny)
    assert len(model.unets) == 2
    outputs = model(images())
    assert len(outputs) == 4
    assert not torch.allclose(outputs[1], outputs[3])  # the second pass refines


def _pair(tiny, **overrides):
    efficient = build_model(num_unets=3, order=2, **tiny, **overrides)
    naive = build_model(num_unets=3, order=2, memory_efficient=False, **tiny, **overrides)
    naive.load_state_dict(efficient.state_dict())
    return efficient, naive


def _step(model, x):
    outputs = model(x)
    heatmap_loss(outputs, torch.ones_like(outputs[0])).backward()
    return outputs


@pytest.mark.parametrize("bits", ["w32a32g32", "w2a8g32"])
def test_memory_efficient_mode_gives_the_same_outputs_and_gradients(tiny, bits):
    efficient, naive = _pair(tiny, bits=bits)
    x = images()
    for a, b in zip(_step(efficient, x), _step(naive, x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    largest = max(p.grad.abs().max() for p in naive.parameters() if p.grad is not None)
    for (name, a), b in zip(efficient.named_parameters(), naive.parameters(), strict=True):
        assert (a.grad - b.grad).abs().max() <= 1e-5 * largest, name


def test_recomputation_does_not_update_batchnorm_statistics_twice(tiny):
    efficient, naive = _pair(tiny)
    x = images()
    _step(efficient, x)
    _step(naive, x)
    for a, b in zip(efficient.modules(), naive.modules(), strict=True):
        if isinstance(a, BatchNorm2d):
            assert int(a.num_batches_tracked) == 1
            torch.testing.assert_close(a.running_mean, b.running_mean)
            torch.testing.assert_close(a.running_var, b.running_var)


def test_default_quantizes_every_conv_but_the_stem_and_final_head(tiny):
    model = build_model(num_unets=2, order=1, bits="w1a8g8", **tiny)
    assert str(model.heads[-1].conv.bits) == "w32a32g32"
    assert str(model.heads[0].conv.bits) == "w1a8g8"
    assert isinstance(model.stem.conv, torch.nn.Conv2d) and not hasattr(model.stem.conv, "bits")
    convs = [m for m in model.modules() if hasattr(m, "bits")]
    assert sum(str(m.bits) == "w32a32g32" for m in convs) == 1


def test_3x3_scope_quantizes_only_3x3_convs_and_intermediate_heads(tiny):
    model = build_model(num_unets=2, order=1, bits="w1a8g8", quant_scope="3x3", **tiny)
    for name, module in model.named_modules():
        if hasattr(module, "bits"):
            quantized = str(module.bits) != "w32a32g32"
            expected = module.kernel_size == (3, 3) or name == "heads.0.conv"
            assert quantized == expected, name


def test_quantized_model_trains(tiny):
    model = build_model(num_unets=2, order=1, bits="w1a8g8", **tiny)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    x = images(4)
    target = torch.zeros(4, 5, 16, 16)
    target[:, :, 8, 8] = 1.0
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = heatmap_loss(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_heatmap_loss_ignores_landmarks_with_zero_weight():
    target = torch.zeros(2, 3, 4, 4)
    prediction = torch.zeros(2, 3, 4, 4)
    prediction[:, 1] = 5.0
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    assert heatmap_loss([prediction], target, weight).item() == 0.0
    assert heatmap_loss([prediction, prediction], target).item() == pytest.approx(2 * 25 / 3)

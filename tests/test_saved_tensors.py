import pytest
import torch

from fedland.model import build_model, heatmap_loss
from fedland.quant import SavedTensorStore
from fedland.quant.saved_tensors import expected_packed_bytes
from fedland.train import make_optimizer, train_epoch
from tests.conftest import images


def _saved_bytes(model, x, bits=None):
    with SavedTensorStore.for_model(model, bits) as store:
        outputs = model(x)
    heatmap_loss(outputs, torch.zeros_like(outputs[0])).backward()
    return store.stored_bytes


def test_memory_efficient_and_low_bit_storage_save_memory(tiny):
    x = images(2)
    settings = {"num_unets": 3, "order": 1, **tiny}
    naive = _saved_bytes(build_model(memory_efficient=False, **settings), x)
    efficient = _saved_bytes(build_model(**settings), x)
    low_bit = _saved_bytes(build_model(bits="w1a8g8", **settings), x, bits=8)
    assert efficient < 0.55 * naive
    assert low_bit < 0.2 * naive


def test_low_bit_storage_keeps_gradients_close(tiny):
    reference = build_model(num_unets=2, order=1, bits="w2a8g32", **tiny)
    compressed = build_model(num_unets=2, order=1, bits="w2a8g32", **tiny)
    compressed.load_state_dict(reference.state_dict())
    x = images(2)
    _saved_bytes(reference, x)
    _saved_bytes(compressed, x, bits=8)
    a = torch.cat([p.grad.flatten() for p in reference.parameters() if p.grad is not None])
    b = torch.cat([p.grad.flatten() for p in compressed.parameters() if p.grad is not None])
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.9


def _train(tiny, bits, steps=25):
    torch.manual_seed(0)
    model = build_model(num_unets=2, order=1, bits="w2a8g8", **tiny)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    x = images(4)
    target = torch.zeros(4, 5, 16, 16)
    target[:, :, 8, 8] = 1.0
    for _ in range(steps):
        optimizer.zero_grad()
        with SavedTensorStore.for_model(model, bits):
            outputs = model(x)
        loss = heatmap_loss(outputs, target)
        loss.backward()
        optimizer.step()
    return loss.item()


@pytest.mark.slow
def test_training_with_low_bit_storage_converges_like_float_storage(tiny):
    float_loss = _train(tiny, None)
    assert _train(tiny, 4) < 1.5 * float_loss


def test_compressed_tensor_round_trip_error_is_within_half_a_step():
    x = torch.randn(2, 4, 32, 32, requires_grad=True)
    with SavedTensorStore(bits=4) as store:
        y = x * x  # saves x twice (as both operands) -> stored once
    assert store.stored_bytes == expected_packed_bytes(x.numel(), 4)
    assert store.stored_bytes == x.numel() // 2 + 8 * x.numel() // 256
    y.sum().backward()
    groups = x.detach().reshape(-1, 256)
    step = (groups.amax(dim=1) - groups.amin(dim=1)) / 15
    error = (x.grad - 2 * x.detach()).reshape(-1, 256).abs().amax(dim=1)
    assert torch.all(error <= 2 * step / 2 + 1e-5)


def test_model_store_follows_the_activation_bits(tiny):
    assert build_model(num_unets=2, bits="w1a4g8", **tiny).saved_tensor_store().bits == 4
    assert build_model(num_unets=2, bits="w1a32g8", **tiny).saved_tensor_store().bits is None
    off = build_model(num_unets=2, bits="w1a4g8", low_bit_saved_activations=False, **tiny)
    assert off.saved_tensor_store().bits is None


def test_bits_outside_range_are_rejected():
    with pytest.raises(ValueError, match=r"1\.\.8"):
        SavedTensorStore(bits=16)


def _one_batch_loader(batch=4):
    torch.manual_seed(1)
    target = torch.zeros(batch, 5, 16, 16)
    target[:, :, 8, 8] = 1.0
    return [{"image": images(batch), "target": target, "target_weight": torch.ones(batch, 5)}]


def _trained_by_train_epoch(tiny, loader, low_bit):
    torch.manual_seed(0)
    model = build_model(
        num_unets=1, order=0, bits="w2a4g32", low_bit_saved_activations=low_bit, **tiny
    )
    optimizer = make_optimizer(model, lr=1e-3)
    train_epoch(model, loader, optimizer, torch.device("cpu"))
    return model


def test_training_loop_keeps_saved_activations_at_the_activation_bits(tiny):
    """`train_epoch` (the step of `fedland train` and of every federated client) runs
    backward through a 4-bit store: its gradients and weights are those of that store."""
    loader = _one_batch_loader()
    batch = loader[0]
    low_bit = _trained_by_train_epoch(tiny, loader, low_bit=True)
    full = _trained_by_train_epoch(tiny, loader, low_bit=False)

    torch.manual_seed(0)
    reference = build_model(num_unets=1, order=0, bits="w2a4g32", **tiny)
    optimizer = make_optimizer(reference, lr=1e-3)
    reference.train()
    with SavedTensorStore.for_model(reference, 4) as store:
        outputs = reference(batch["image"])
    heatmap_loss(outputs, batch["target"], batch["target_weight"]).backward()
    optimizer.step()
    assert store.bits == 4 and store.stored_bytes > 0

    named = list(reference.named_parameters())
    for (name, expected), trained in zip(named, low_bit.parameters(), strict=True):
        assert torch.equal(trained.grad, expected.grad), name
        assert torch.equal(trained, expected), name
    differing = [
        name
        for (name, _), a, b in zip(named, low_bit.parameters(), full.parameters(), strict=True)
        if not torch.equal(a.grad, b.grad)
    ]
    assert len(differing) > len(named) // 2

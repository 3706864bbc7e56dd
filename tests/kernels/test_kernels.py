"""Each kernel: the factory contract, deterministic data, learning, and fast path == eager baseline."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from kernels import NAMES, factory_path

pytestmark = pytest.mark.torch
SMALL = {  # small sizes keep each test at a second or two on one thread
    "mlp": {"hidden": (64, 64)},
    "cnn": {"image_size": 16, "channels": (8, 16)},
    "transformer": {"d_model": 64, "layers": 2, "heads": 4, "seq_len": 32, "vocab": 64},
    "logreg": {},
}


def kernel(name):
    return importlib.import_module(f"kernels.{name}")


def train(name, steps, **kwargs):
    mod = kernel(name)
    cfg = mod.Config.from_kwargs(**SMALL[name], **kwargs)
    model, optimizer, loss_fn = mod.build(cfg)
    losses = []
    for i in range(steps):
        x, y = mod.make_batch(cfg, i)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", NAMES)
def test_factory_contract(name):
    model, optimizer, (inputs, targets), loss_fn = kernel(name).factory(**SMALL[name], batch_size=8)
    assert inputs.shape[0] == targets.shape[0] == 8
    loss = loss_fn(model(inputs), targets)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert factory_path(name) == f"kernels.{name}:factory"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fast", [False, True])
def test_factory_runs_under_fake_tensor_mode(name, fast):
    """The memory estimator calls factories under FakeTensorMode: no real allocation, no compile."""
    with FakeTensorMode():
        model, optimizer, (inputs, targets), loss_fn = kernel(name).factory(fast=fast)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
    assert isinstance(inputs, FakeTensor) and isinstance(loss, FakeTensor)
    assert not hasattr(model, "_orig_mod")  # not wrapped by torch.compile


@pytest.mark.parametrize("name", NAMES)
def test_synthetic_batches_are_deterministic_and_distinct(name):
    mod = kernel(name)
    cfg = mod.Config.from_kwargs(**SMALL[name])
    a, b, c = mod.make_batch(cfg, 3), mod.make_batch(cfg, 3), mod.make_batch(cfg, 4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    other_seed = mod.make_batch(mod.Config.from_kwargs(**SMALL[name], seed=1), 3)
    assert not torch.equal(a[0], other_seed[0])


@pytest.mark.parametrize("name", NAMES)
def test_loss_goes_down(name):
    """With its default hyperparameters each kernel learns its synthetic task within 40 steps."""
    losses = train(name, 40)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


@pytest.mark.parametrize("name", NAMES)
def test_fast_path_matches_eager(name):
    """Same seed, same batches: the fast path (fused optimizer, channels-last, SDPA, torch.compile where
    the kernel enables it) follows the eager baseline's loss curve to float tolerance."""
    eager = train(name, 6, fast=False)
    fast = train(name, 6, fast=True)
    assert fast == pytest.approx(eager, rel=2e-3, abs=2e-4)


def test_fast_path_without_compile_matches_too():
    """The transformer's SDPA path alone (no compile) matches the explicit attention."""
    assert train("transformer", 6, fast=True, compile=False) == pytest.approx(
        train("transformer", 6, fast=False), rel=2e-3, abs=2e-4)


def test_compile_forced_on_mlp_matches():
    assert train("mlp", 4, fast=True, compile=True) == pytest.approx(train("mlp", 4), rel=2e-3, abs=2e-4)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"hiden": "64"}, "hiden"), ({"hidden": "64,x"}, "hidden"), ({"lr": 0}, "lr"),
    ({"optimizer": "rmsprop"}, "optimizer"), ({"device": "tpu"}, "device"), ({"fast": "maybe"}, "fast"),
])
def test_bad_hyperparameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        kernel("mlp").factory(**kwargs)


def test_transformer_heads_must_divide_d_model():
    with pytest.raises(ValueError, match="d_model"):
        kernel("transformer").factory(d_model=66, heads=4)


def test_unknown_kernel_named():
    with pytest.raises(ValueError, match="kernel: unknown kernel 'resnet'"):
        factory_path("resnet")


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device: 'cuda'"):
        kernel("mlp").factory(device="cuda")

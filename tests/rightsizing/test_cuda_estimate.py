"""CUDA jobs estimated without a GPU: the host/device split, the allocator model, and traces of the
layer kinds that failed under fake CUDA tensors (RNNs, autocast, SDPA, ResNets, the built-in kernels).
These run on CPU: the device is stood in for by ``meta`` and accounted with CUDA's rules."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobsched.rightsizing import cuda
from jobsched.rightsizing.cuda import CachingAllocator, MiB, replay

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from jobsched.rightsizing.estimator import DEVICE_KEYS, estimate_factory, estimate_job  # noqa: E402
from jobsched.spec import TrainingJob  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = __name__
ZOO = "jobsched.rightsizing.zoo:"
CONTEXT = 300 * MiB
HOST = 1400 * MiB


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("JOBSCHED_HOME", str(tmp_path))
    monkeypatch.setenv("JOBSCHED_CUDA_BASELINE_BYTES", str(CONTEXT))
    monkeypatch.setenv("JOBSCHED_CUDA_HOST_BASELINE_BYTES", str(HOST))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    yield


# -- the allocator model ---------------------------------------------------------------------------

def test_allocator_rounds_blocks_and_picks_segments_like_the_cuda_caching_allocator() -> None:
    assert [cuda.round_size(n) for n in (1, 512, 513, 4000)] == [512, 512, 1024, 4096]
    a = CachingAllocator()
    small = [a.malloc(4) for _ in range(4)]  # four 512-byte blocks from one 2 MiB small segment
    assert (a.allocated, a.reserved) == (4 * 512, 2 * MiB)
    mid = a.malloc(3 * MiB)  # 1-10 MiB: a 20 MiB segment, split (remainder > 1 MiB)
    assert (a.allocated, a.reserved) == (4 * 512 + 3 * MiB, 22 * MiB)
    a.malloc(11 * MiB)  # best fit: the 17 MiB left in that segment
    assert a.reserved == 22 * MiB
    a.malloc(17 * MiB + 1)  # no cached block is large enough: its own segment, rounded up to 2 MiB
    assert a.reserved == 22 * MiB + 18 * MiB
    a.free(mid)
    again = a.malloc(3 * MiB)  # the freed block is reused: nothing new reserved
    assert a.reserved == 40 * MiB and again.segment == mid.segment
    a.free(again)
    a.free(a.malloc(1))
    whole = a.malloc(2 * MiB + 512 * 1024)  # 3 MiB free block; a remainder <= 1 MiB is not split off
    assert whole.size == 3 * MiB and a.allocated == 4 * 512 + 11 * MiB + 18 * MiB + 3 * MiB
    for b in small:
        a.free(b)
    assert a.peak_reserved == 40 * MiB


def test_replay_reports_the_peak_reserved_above_the_peak_allocated() -> None:
    events = [(1, 6 * MiB), (2, 6 * MiB), (1, -1), (3, 7 * MiB), (3, -1), (2, -1), (4, 12 * MiB),
              (4, -1), (5, 14 * MiB), (5, -1)]
    alloc = replay(events)
    # 7 MiB takes the 8 MiB hole whole (a remainder of 1 MiB is not split off)
    assert alloc.peak_allocated == 14 * MiB
    # 12 MiB fits the coalesced 20 MiB segment; 14 MiB after it too: no second segment
    assert alloc.peak_reserved == 20 * MiB
    fragmented = replay([(1, 12 * MiB), (1, -1), (2, 14 * MiB)])  # a 12 MiB segment cannot hold 14
    assert (fragmented.peak_allocated, fragmented.peak_reserved) == (14 * MiB, 26 * MiB)


# -- the host/device split -------------------------------------------------------------------------

def two_linear() -> tuple[Any, Any, Any, Any]:
    model = torch.nn.Sequential(torch.nn.Linear(1000, 300), torch.nn.ReLU(), torch.nn.Linear(300, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, (torch.randn(64, 1000), torch.randint(0, 10, (64,))), torch.nn.functional.cross_entropy


def test_cuda_estimate_has_a_host_and_a_device_figure() -> None:
    est = estimate_factory(f"{HERE}:two_linear", device="cuda")
    assert est.peak_memory_bytes == est.host_peak_bytes == sum(est.breakdown.values())
    assert est.breakdown["baseline"] == HOST and est.breakdown["parameters"] == 0  # all on the GPU
    dev = est.device_breakdown
    assert dev is not None and list(dev) == list(DEVICE_KEYS) and sum(dev.values()) == est.device_peak_bytes
    n_blocks = [1000 * 300, 300, 300 * 10, 10]  # float32 tensors, each rounded up to 512 bytes
    assert dev["parameters"] == dev["gradients"] == dev["optimizer_state"] == sum(
        -(-4 * n // 512) * 512 for n in n_blocks)
    assert dev["cuda_context"] == CONTEXT
    if not torch.cuda.is_available():  # else measured by the probe
        assert dev["cublas_workspace"] == cuda.CUBLAS_WORKSPACE_FALLBACK  # the first matmul allocates it
    tensors = dev["parameters"] + dev["gradients"] + dev["optimizer_state"] + dev["activations_peak"]
    assert est.device_peak_bytes >= tensors + dev["cublas_workspace"] + CONTEXT
    # 1.2 MB parameters need a 20 MiB segment: the allocator's reserve is part of the device figure,
    # and what it reserves is whole segments (2 MiB multiples here)
    reserved = tensors + dev["cublas_workspace"] + dev["allocator_reserve"]
    assert dev["allocator_reserve"] > 0 and reserved % (2 * MiB) == 0


def test_cpu_estimate_has_no_device_figure() -> None:
    est = estimate_factory(f"{HERE}:two_linear", device="cpu")
    assert est.device_peak_bytes is None and est.device_breakdown is None
    assert est.host_peak_bytes == est.peak_memory_bytes


def host_data() -> tuple[Any, Any, Any, Any]:
    """A dataset held in host memory, one batch moved to the GPU: host and device counted apart."""
    model = torch.nn.Linear(100, 10).cuda()
    dataset = torch.randn(50_000, 100, device="cpu")  # 20 MB on the host
    batch = dataset[:32].to("cuda")
    assert batch.is_cuda and not dataset.is_cuda and model.weight.is_cuda and torch.cuda.is_available()
    opt = torch.optim.Adam(model.parameters())
    return model, opt, (batch, torch.randint(0, 10, (32,), device="cuda")), torch.nn.functional.cross_entropy


def test_host_tensors_count_on_the_host_and_module_to_cuda_moves_parameters() -> None:
    est = estimate_factory(f"{HERE}:host_data", device="cuda")
    assert est.peak_memory_bytes - HOST >= 50_000 * 100 * 4
    assert est.breakdown["optimizer_state"] == 2 * 4  # foreach Adam keeps its `step` scalars on the host
    assert est.device_breakdown is not None and est.device_breakdown["parameters"] == 4096 + 512


def tied() -> tuple[Any, Any, Any, Any]:
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(1000, 256)
            self.head = torch.nn.Linear(256, 1000, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, x: Any) -> Any:
            return self.head(self.emb(x))

    model = Tied().to("cuda")
    assert model.head.weight is model.emb.weight
    tokens = torch.randint(0, 1000, (4, 16), device="cuda")
    return (model, torch.optim.SGD(model.parameters(), lr=0.1), (tokens, tokens),
            lambda out, t: torch.nn.functional.cross_entropy(out.flatten(0, 1), t.flatten()))


def test_tied_weights_stay_tied_through_module_to() -> None:
    est = estimate_factory(f"{HERE}:tied", device="cuda")
    assert est.device_breakdown is not None and est.device_breakdown["parameters"] == 1000 * 256 * 4


# -- layer kinds that must trace for device cuda without a GPU -------------------------------------

def autocast_mlp(amp: bool = True) -> tuple[Any, Any, Any, Any]:
    model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 256))

    def forward(x: Any) -> Any:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out = model(x)
            assert out.dtype == (torch.bfloat16 if amp else torch.float32)
            assert out.softmax(-1).dtype == torch.float32  # CUDA autocast runs softmax in fp32
            return out

    return (forward, torch.optim.SGD(model.parameters()), (torch.randn(4096, 256), torch.randn(4096, 256)),
            lambda out, t: torch.nn.functional.mse_loss(out.float(), t))


def test_bf16_autocast_uses_cuda_op_lists_and_halves_the_activations() -> None:
    bf16 = estimate_factory(f"{HERE}:autocast_mlp", {"amp": True}, device="cuda").device_breakdown
    fp32 = estimate_factory(f"{HERE}:autocast_mlp", {"amp": False}, device="cuda").device_breakdown
    assert bf16 is not None and fp32 is not None
    assert bf16["parameters"] == fp32["parameters"]
    assert bf16["activations_peak"] < 0.8 * fp32["activations_peak"]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_cudnn_rnns_trace_for_cuda_and_load_cudnn(cell: str) -> None:
    kwargs = {"cell": cell, "hidden": 64, "layers": 2, "seq": 16, "batch": 8, "vocab": 100}
    est = estimate_factory("jobsched.rightsizing.zoo:rnn", kwargs, device="cuda")
    assert est.device_breakdown is not None and est.device_breakdown["activations_peak"] > 0
    assert est.device_peak_bytes is not None and est.device_peak_bytes > CONTEXT


def test_resnet_traces_for_cuda_and_loads_cudnn() -> None:
    """torchvision's resnet18 when installed, else the same layers (zoo.resnet)."""
    est = estimate_factory(ZOO + "resnet", {"image": 32, "batch": 4, "width": 16}, device="cuda")
    assert est.device_breakdown is not None and est.device_breakdown["activations_peak"] > 0
    assert est.device_breakdown["cuda_context"] == CONTEXT


def test_cuda_context_fallback_counts_the_libraries_a_step_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBSCHED_CUDA_BASELINE_BYTES")
    if torch.cuda.is_available():
        pytest.skip("a GPU here measures the context instead of the fallback")
    conv = estimate_factory(ZOO + "resnet", {"image": 32, "batch": 4, "width": 16}, device="cuda").device_breakdown
    mlp = estimate_factory(f"{HERE}:two_linear", device="cuda").device_breakdown
    assert conv is not None and mlp is not None
    fb = cuda.CONTEXT_FALLBACK
    assert mlp["cuda_context"] == fb["base"] + fb["cublas"]
    assert conv["cuda_context"] == fb["base"] + fb["cublas"] + fb["cudnn"]


def hf_gpt2() -> tuple[Any, Any, Any, Any]:
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=128, vocab_size=1000, n_positions=64)).cuda()
    tokens = torch.randint(0, 1000, (2, 64), device="cuda")
    return (model, torch.optim.AdamW(model.parameters()), (tokens, tokens),
            lambda out, t: torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), t.flatten()))


def test_hugging_face_model_traces_for_cuda() -> None:
    pytest.importorskip("transformers")
    est = estimate_factory(f"{HERE}:hf_gpt2", device="cuda")
    assert est.device_breakdown is not None and est.device_breakdown["parameters"] > 0


def job(spec: dict[str, Any]) -> TrainingJob:
    return TrainingJob.model_validate({"metadata": {"name": "j"}, "spec": spec})


@pytest.mark.parametrize("kernel", ["transformer", "cnn", "mlp", "logreg"])
def test_builtin_kernels_estimate_for_cuda_without_a_gpu(kernel: str) -> None:
    argv = ["python", "-m", "workers.train", "--kernel", kernel, "--device", "cuda", "--fast", "--steps", "60"]
    spec = {"template": {"command": argv, "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "512Mi"}}}}
    est = estimate_job(job(spec))
    assert est is not None and est.device == "cuda" and est.device_peak_bytes is not None
    assert est.peak_memory_bytes == est.host_peak_bytes >= HOST
    assert est.device_breakdown is not None and est.device_breakdown["parameters"] > 0


def test_estimate_json_has_both_figures(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jobsched.cli.main import build_app

    manifest = tmp_path / "job.yaml"
    manifest.write_text(json.dumps({"metadata": {"name": "g"}, "spec": {"template": {
        "command": ["python", "-m", "workers.train", "--kernel", "transformer", "--device", "cuda", "--fast"],
        "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "512Mi"}}}}}))
    r = CliRunner().invoke(build_app(), ["estimate", str(manifest), "-o", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["peak_memory_bytes"] == data["host_peak_bytes"] == sum(data["breakdown"].values())
    assert data["device_peak_bytes"] == sum(data["device_breakdown"].values()) > CONTEXT


def broken() -> Any:
    torch.nn.Linear(4, 4).cuda()
    raise RuntimeError("user code failed")


def test_a_cuda_trace_leaves_torch_as_it_was() -> None:
    from torch.amp import autocast_mode

    from jobsched.rightsizing.estimator import EstimateError

    def state() -> tuple[Any, ...]:
        return (torch.cuda.is_available(), torch.cuda.device_count, torch.nn.Module._apply,
                autocast_mode.autocast.__init__, autocast_mode.autocast.__enter__,
                torch.overrides._get_current_function_mode_stack())

    before = state()
    estimate_factory(f"{HERE}:autocast_mlp", device="cuda")
    with pytest.raises(EstimateError, match="user code failed"):
        estimate_factory(f"{HERE}:broken", device="cuda")
    assert state() == before

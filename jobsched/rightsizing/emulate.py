"""Trace a CUDA training step without a GPU: the device is stood in for by ``meta``.

PyTorch's autograd engine needs a real CUDA device even for fake CUDA tensors, so a CUDA job is
traced on fake *meta* tensors (the same shapes, dtypes and autograd graph; backward runs on meta),
with everything the program does with CUDA redirected there:

* ``device="cuda"``, ``.to("cuda")``, ``.cuda()``, ``torch.device("cuda")`` contexts -> ``meta``;
  host (CPU) tensors stay on CPU, so host and device bytes are counted apart;
* ``torch.cuda.is_available()``, ``Tensor.is_cuda`` and a few queries answer as one H100-class GPU
  would;
* ``Module.to``/``.cuda()`` replaces parameters instead of swapping them (fake tensors cannot be
  swapped), keeping tied weights tied;
* ``torch.autocast("cuda", ...)`` applies CUDA's autocast op lists (the casts CPU autocast would
  make differ) at the Python level, with its weight-cast cache;
* ``scaled_dot_product_attention`` runs CUDA's flash (fp16/bf16) or memory-efficient kernel, whose
  saved tensors are the output and the log-sum-exp, not the math path's attention matrix;
* RNNs run PyTorch's native decomposition (the cuDNN kernel has no fake implementation); their use
  is recorded so the context includes cuDNN.

Import-light: torch is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

STANDIN = "meta"
CAPABILITY = (9, 0)  # what the emulated GPU reports (H100): decides e.g. bf16 support


def _is_cuda(d: Any) -> bool:
    import torch

    if isinstance(d, torch.device):
        return d.type == "cuda"
    if isinstance(d, str):
        return d.split(":")[0] == "cuda"
    return isinstance(d, int) and not isinstance(d, bool)  # an index means a CUDA device


def _remap(d: Any) -> Any:
    return STANDIN if _is_cuda(d) else d


@functools.cache
def _policies() -> dict[Any, str]:
    """CUDA autocast's op lists (aten/src/ATen/autocast_mode.cpp, the AMP docs), as the Python
    functions a program calls: "low" runs in the autocast dtype, "fp32" in float32."""
    import torch
    from torch.nn import functional as F

    T = torch.Tensor
    low = [F.linear, torch.matmul, T.matmul, T.__matmul__, T.__rmatmul__, torch.mm, T.mm, torch.bmm, T.bmm,
           torch.addmm, T.addmm, torch.baddbmm, T.baddbmm, torch.addbmm, torch.mv, T.mv, torch.addmv,
           torch.addr, torch.chain_matmul, torch.linalg.multi_dot, torch.einsum, F.conv1d, F.conv2d,
           F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.prelu, torch.lstm,
           torch.gru, torch.rnn_tanh, torch.rnn_relu, torch.lstm_cell, torch.gru_cell, torch.rnn_tanh_cell,
           torch.rnn_relu_cell, F.scaled_dot_product_attention]
    fp32 = [F.softmax, F.log_softmax, F.softmin, torch.softmax, torch.log_softmax, T.softmax, T.log_softmax,
            F.layer_norm, F.group_norm, F.cross_entropy, F.nll_loss, F.mse_loss, F.l1_loss, F.smooth_l1_loss,
            F.huber_loss, F.kl_div, F.binary_cross_entropy_with_logits, F.softplus, F.normalize,
            F.cosine_similarity, torch.exp, T.exp, torch.log, T.log, torch.pow, T.pow, T.__pow__, torch.sum,
            T.sum, torch.prod, T.prod, torch.cumsum, T.cumsum, torch.norm, T.norm, torch.rsqrt, T.rsqrt,
            torch.reciprocal, T.reciprocal, torch.logsumexp, T.logsumexp]
    return {**{f: "low" for f in low}, **{f: "fp32" for f in fp32}}


@functools.cache
def _classes() -> tuple[type, type]:
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils import _device
    from torch.utils._device import _device_constructors
    from torch.utils._pytree import tree_map_only

    class Autocast(TorchFunctionMode):
        """CUDA autocast on the stand-in device: casts happen where CUDA's would (the listed ops,
        called from Python). Inside a Python composite the mode is off, as for any torch function
        mode, except for ``multi_head_attention_forward``, which runs with it on."""

        def __init__(self, dtype: torch.dtype) -> None:
            super().__init__()
            self.dtype = dtype
            self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def cast(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
            if t.device.type != STANDIN or not t.is_floating_point() or t.dtype in (dtype, torch.float64):
                return t
            cacheable = t.is_leaf and t.requires_grad  # autocast caches the casts of weights
            if cacheable and id(t) in self.cache:
                return self.cache[id(t)][1]
            out = t.to(dtype)
            if cacheable:
                self.cache[id(t)] = (t, out)
            return out

        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            policy = _policies().get(func)
            if policy is None:
                if func is not torch.nn.functional.multi_head_attention_forward:
                    return func(*args, **kwargs)
                with self, _body_only(torch.nn.functional):
                    return func(*args, **kwargs)
            dtype = self.dtype if policy == "low" else torch.float32
            args, kwargs = tree_map_only(torch.Tensor, lambda t: self.cast(t, dtype), (args, kwargs))
            return func(*args, **kwargs)

    class Redirect(TorchFunctionMode):
        """CUDA -> the stand-in device; SDPA -> CUDA's fused kernels; notes cuDNN-only layers."""

        def __init__(self) -> None:
            super().__init__()
            self.extra_libraries: set[str] = set()

        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = dict(kwargs or {})
            if kwargs.get("device") is not None:
                kwargs["device"] = _remap(kwargs["device"])
            elif func in _device_constructors() and _is_cuda(_device.CURRENT_DEVICE):
                kwargs["device"] = STANDIN  # torch.device("cuda") contexts sit below this mode
            kwargs.pop("pin_memory", None)
            T = torch.Tensor
            if func is T.cuda:
                func, args = T.to, (args[0], STANDIN)
                kwargs.pop("device", None)
            elif func is T.pin_memory:
                return args[0]
            elif getattr(func, "__self__", None) is T.is_cuda:  # the property's getter
                return args[0].device.type in ("cuda", STANDIN)
            elif func is T.to:
                args = (args[0], *map(_remap, args[1:]))
            elif func in (torch.lstm, torch.gru, torch.rnn_tanh, torch.rnn_relu):
                self.extra_libraries.add("cudnn")
            elif func is torch.nn.functional.scaled_dot_product_attention:
                try:
                    fused = _fused_sdpa(*args, **kwargs)
                except TypeError:  # arguments of a newer signature: let the original decide
                    fused = None
                if fused is not None:
                    return fused
            return func(*args, **kwargs)

    return Autocast, Redirect


@contextlib.contextmanager
def _body_only(module: Any) -> Iterator[None]:
    """Run a Python function of ``module`` past its own ``has_torch_function`` check (which would
    hand it back to the mode again), so that the mode sees the ops in its body."""
    saved = module.has_torch_function
    module.has_torch_function = lambda *a: False
    try:
        yield
    finally:
        module.has_torch_function = saved


def _fused_sdpa(q: Any, k: Any, v: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> Any:
    """The kernel CUDA picks for a device tensor: flash (fp16/bf16, no mask, head dim <= 256), else
    memory-efficient; None (the original function) for what neither takes."""
    import torch

    if q.device.type != STANDIN or enable_gqa or q.dim() != 4 or q.shape[-1] != v.shape[-1]:
        return None
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    aten = torch.ops.aten
    if attn_mask is None and q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] <= 256:
        return aten._scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, False, scale=scale)[0]
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill(
            attn_mask.logical_not(), float("-inf"))
    return aten._scaled_dot_product_efficient_attention(q, k, v, attn_mask, grad, dropout_p, is_causal,
                                                        scale=scale)[0]


_MEMOS: dict[int, tuple[Any, dict[int, Any]]] = {}  # id(fn) -> (fn, {id(old param): (old, new)})


def _apply_replacing(self: Any, fn: Any, recurse: bool = True) -> Any:
    """``Module._apply`` for fake tensors: new Parameter objects (tied ones stay tied)."""
    import torch

    memo = _MEMOS.setdefault(id(fn), (fn, {}))[1]
    if recurse:
        for child in self.children():
            child._apply(fn)
    for key, p in self._parameters.items():
        if p is None:
            continue
        if id(p) not in memo:
            with torch.no_grad():
                new = fn(p)
            if new is not p:
                new = torch.nn.Parameter(new, requires_grad=p.requires_grad)
                if p.grad is not None:
                    with torch.no_grad():
                        new.grad = fn(p.grad)
            memo[id(p)] = (p, new)
        self._parameters[key] = memo[id(p)][1]
    for key, b in self._buffers.items():
        if b is not None:
            self._buffers[key] = fn(b)
    return self


@contextlib.contextmanager
def cuda_on_standin() -> Iterator[Any]:
    """Run a CUDA program with the stand-in device; yields the redirect mode (its
    ``extra_libraries`` name libraries the trace of aten ops cannot show)."""
    import torch
    from torch.amp import autocast_mode
    from torch.optim import optimizer

    autocast_cls, redirect_cls = _classes()
    fused_devices = optimizer._get_fused_kernels_supported_devices  # type: ignore[attr-defined]
    cuda = torch.cuda
    fakes: dict[tuple[Any, str], Any] = {
        (cuda, "is_available"): lambda: True, (cuda, "device_count"): lambda: 1,
        (cuda, "current_device"): lambda: 0, (cuda, "is_bf16_supported"): lambda *a, **k: True,
        (cuda, "get_device_capability"): lambda *a: CAPABILITY, (cuda, "get_device_name"): lambda *a: "emulated",
        **{(cuda, name): (lambda *a, **k: None) for name in (
            "synchronize", "manual_seed", "manual_seed_all", "set_device", "empty_cache",
            "reset_peak_memory_stats", "init")},
        (torch.nn.Module, "_apply"): _apply_replacing,
        (optimizer, "_get_fused_kernels_supported_devices"): lambda: [*fused_devices(), STANDIN],
    }
    ac = autocast_mode.autocast
    orig_init: Any = ac.__init__
    orig_enter: Any = ac.__enter__
    orig_exit: Any = ac.__exit__

    def init(self: Any, device_type: str, dtype: Any = None, enabled: bool = True,
             cache_enabled: Any = None) -> None:
        if device_type in ("cuda", STANDIN):
            self._standin = autocast_cls(dtype or torch.float16) if enabled else None
            self.device, self.fast_dtype, self._enabled = "cuda", dtype or torch.float16, enabled
            return
        orig_init(self, device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    def enter(self: Any) -> Any:
        if not hasattr(self, "_standin"):
            return orig_enter(self)
        self._standin_stack = contextlib.ExitStack()
        mode = self._standin
        if mode is None:  # autocast(enabled=False) inside an autocast region: plain dtypes again
            from torch.overrides import _pop_mode_temporarily

            if isinstance(_peek_mode(), autocast_cls):
                self._standin_stack.enter_context(_pop_mode_temporarily())
            return self
        self._standin_stack.enter_context(mode)
        return self

    def exit_(self: Any, *exc: Any) -> Any:
        if not hasattr(self, "_standin"):
            return orig_exit(self, *exc)
        if self._standin is not None:
            self._standin.cache.clear()
        self._standin_stack.close()
        return False

    saved = {k: getattr(*k) for k in fakes}
    redirect = redirect_cls()
    try:
        for (owner, name), value in fakes.items():
            setattr(owner, name, value)
        ac.__init__, ac.__enter__, ac.__exit__ = init, enter, exit_  # type: ignore[method-assign]
        with redirect:
            yield redirect
    finally:
        _MEMOS.clear()
        for (owner, name), value in saved.items():
            setattr(owner, name, value)
        ac.__init__, ac.__enter__, ac.__exit__ = orig_init, orig_enter, orig_exit  # type: ignore[method-assign]


def _peek_mode() -> Any:
    from torch.overrides import _get_current_function_mode_stack

    stack = _get_current_function_mode_stack()  # type: ignore[no-untyped-call]
    return stack[-1] if stack else None

"""Live-byte tracking of a traced training step (the method: docs/estimator.md).

A ``TorchDispatchMode`` sees every aten op and registers each output's untyped storage (views share
one); a weak reference with a callback on each storage removes its bytes when it is freed, so the
live bytes per device type are exact at every op boundary. This is the mechanism of PyTorch's own
``torch.distributed._tools.mem_tracker.MemTracker``, reduced to what a whole-process peak needs.

Import-light: torch is imported inside functions only.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@functools.cache
def tracker_class() -> type:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map_only
    from torch.utils.weak import WeakIdKeyDictionary

    class LiveBytes(TorchDispatchMode):
        """Live and peak bytes per device type (``blocks``: type -> rounding), updated after every
        op. A storage is counted when an op first returns it and uncounted when it is freed.
        ``events`` is the allocation sequence of ``event_device``: (key, bytes) allocated, (key, -1)
        freed; ``first_seen``: each aten op run -> the number of events before its first call."""

        def __init__(self, blocks: dict[str, int], event_device: str | None = None) -> None:
            super().__init__()
            self.blocks, self.event_device = blocks, event_device
            self.live = dict.fromkeys(blocks, 0)
            self.peak = dict.fromkeys(blocks, 0)
            self._seen: Any = WeakIdKeyDictionary()  # storage -> [bytes, key, device, weakref]
            self._keys = 0
            self.events: list[tuple[int, int]] = []
            self.first_seen: dict[str, int] = {}

        def size(self, st: torch.UntypedStorage, device: str) -> int:
            block = self.blocks[device]
            return -(-st.nbytes() // block) * block

        def add(self, t: torch.Tensor) -> None:
            dev = t.device.type
            if dev not in self.blocks:
                return
            st = t.untyped_storage()
            n, rec = self.size(st, dev), self._seen.get(st)
            if rec is None:
                self._keys += 1
                rec = [n, self._keys, dev]
                rec.append(weakref.ref(st, functools.partial(self._freed, rec)))
                self._seen[st] = rec
                self.live[dev] += n
                if dev == self.event_device:
                    self.events.append((rec[1], st.nbytes()))
            elif rec[0] != n:  # resized in place (out= ops): a realloc
                self.live[dev] += n - rec[0]
                rec[0] = n
                if dev == self.event_device:
                    self.events += [(rec[1], -1), (rec[1], st.nbytes())]
            self.peak[dev] = max(self.peak[dev], self.live[dev])

        def _freed(self, rec: list[Any], _ref: object) -> None:
            self.live[rec[2]] -= rec[0]
            if rec[2] == self.event_device:
                self.events.append((rec[1], -1))

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if self.event_device is not None:
                self.first_seen.setdefault(func.overloadpacket.__name__, len(self.events))
            out = func(*args, **(kwargs or {}))
            tree_map_only(torch.Tensor, self.add, out)
            return out

    return LiveBytes


def tensors(obj: Any) -> Iterator[torch.Tensor]:
    import torch
    from torch.utils._pytree import tree_leaves

    yield from (x for x in tree_leaves(obj) if isinstance(x, torch.Tensor))


def persistent(model: Any, opt: torch.optim.Optimizer, tracker: Any, device: str) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer state on ``device`` (each storage once)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    if hasattr(model, "parameters"):
        params += list(model.parameters())
    groups = {"parameters": params, "gradients": [p.grad for p in params if p.grad is not None],
              "optimizer_state": list(tensors(list(opt.state.values())))}
    seen: dict[int, Any] = {}
    out = {}
    for key, group in groups.items():
        out[key] = 0
        for t in group:
            st = t.untyped_storage()
            if t.device.type == device and id(st) not in seen:
                seen[id(st)] = st
                out[key] += tracker.size(st, device)
    return out


def match_foreach_default(opt: torch.optim.Optimizer, device_type: str) -> None:
    """Fake parameters are not plain Tensors (and CUDA is stood in for by meta), so torch.optim
    would not pick its foreach implementation as a real run on ``device_type`` does; pin it."""
    from torch.optim.optimizer import _get_foreach_kernels_supported_devices  # type: ignore[attr-defined]

    for group in opt.param_groups:
        if "foreach" in group and group["foreach"] is None and not group.get("fused"):
            group["foreach"] = device_type in _get_foreach_kernels_supported_devices()

"""A user model factory for the right-sizing tests: ~100 MB of parameters trained with Adam
(parameters + gradients + 2 Adam moments ≈ 400 MB), far more than the jobs declare."""

from __future__ import annotations

import json
import os
import sys


def factory(hidden: int = 2048, layers: int = 6, batch: int = 64):
    import torch

    torch.manual_seed(0)
    mods = []
    for _ in range(layers):
        mods += [torch.nn.Linear(hidden, hidden), torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods, torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, hidden)
    y = torch.randint(0, 10, (batch,))
    return model, opt, (x, y), torch.nn.functional.cross_entropy


def train(steps: int = 3) -> None:
    """Real training steps of the same model; checkpoints the step counter, resumes from it."""
    import torch

    torch.set_num_threads(1)
    ck = os.path.join(os.environ.get("JOBSCHED_CHECKPOINT_DIR", "."), "fat.json")
    start = json.load(open(ck))["step"] if os.path.exists(ck) else 0
    print(f"start step={start}", flush=True)
    model, opt, (x, y), loss_fn = factory()
    for step in range(start, steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        with open(ck + ".tmp", "w") as f:
            json.dump({"step": step + 1}, f)
        os.replace(ck + ".tmp", ck)
        print(f"step={step + 1} loss={loss.item():.4f}", flush=True)


if __name__ == "__main__":
    train(int(sys.argv[1]) if len(sys.argv) > 1 else 3)

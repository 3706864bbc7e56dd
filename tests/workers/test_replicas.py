"""Real replicas: a 2-rank gloo DDP run, SIGKILL + resume, SIGTERM -> checkpoint and exit 143."""

from __future__ import annotations

import signal

import pytest
import torch

from .helpers import free_port, launch, steps, wait_for_file

pytestmark = [pytest.mark.slow, pytest.mark.torch]
MLP = ["--kernel", "mlp", "--hidden", "64,64", "--batch-size", "32"]


def test_two_replica_ddp_run_converges(tmp_path):
    port, ckpt = free_port(), tmp_path / "ckpt"
    args = [*MLP, "--steps", "60", "--log-interval", "10", "--checkpoint-every", "25"]
    procs = [launch(args, rank=r, world=2, port=port, ckpt=ckpt, log=tmp_path / f"r{r}.log") for r in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    logs = [(tmp_path / f"r{r}.log").read_text() for r in (0, 1)]
    for rank, text in enumerate(logs):
        assert f"rank={rank} world_size=2" in text
        curve = steps(text)
        assert [s for s, _ in curve] == [10, 20, 30, 40, 50, 60]
        assert curve[-1][1] < 0.8 * curve[0][1], curve  # loss goes down
        assert f"done step=60 rank={rank}" in text and "peak_memory_bytes=" in text
    # Only rank 0 writes: checkpoints at 25, 50 and the final step; all hold the same replicated model.
    assert sorted(p.name for p in ckpt.iterdir()) == ["ckpt-00000025.pt", "ckpt-00000050.pt", "ckpt-00000060.pt"]
    state = torch.load(ckpt / "ckpt-00000060.pt", weights_only=True)
    assert state["step"] == 60 and state["kernel"] == "mlp" and state["world_size"] == 2
    assert state["config"]["hidden"] == (64, 64) or state["config"]["hidden"] == [64, 64]


def test_sigkill_then_resume_continues_the_step_counter(tmp_path):
    ckpt = tmp_path / "ckpt"
    args = [*MLP, "--steps", "100000", "--log-interval", "5", "--checkpoint-every", "10"]
    first = launch(args, ckpt=ckpt, log=tmp_path / "first.log")
    wait_for_file(ckpt, "ckpt-*.pt", first)  # the first checkpoint (older ones are pruned fast)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    saved = max(int(p.name[5:13]) for p in ckpt.glob("ckpt-*.pt"))
    for p in ckpt.glob("ckpt-*.pt"):  # atomic: a kill mid-write leaves a hidden temp file, never a torn ckpt
        assert torch.load(p, weights_only=True)["step"] == int(p.name[5:13])
    target = saved + 15
    second = launch([*MLP, "--steps", str(target), "--log-interval", "5"], ckpt=ckpt, log=tmp_path / "second.log")
    assert second.wait(timeout=90) == 0
    text = (tmp_path / "second.log").read_text()
    assert f"resumed from checkpoint step={saved}" in text
    logged = [s for s, _ in steps(text)]
    assert logged[0] > saved and logged[-1] == target and f"done step={target}" in text
    assert (ckpt / f"ckpt-{target:08d}.pt").exists() and not list(ckpt.glob(".ckpt-*"))  # stale temp removed
    # The resumed model carries on from the trained weights: its loss is below a fresh start's.
    fresh = steps((tmp_path / "first.log").read_text())[0][1]
    assert steps(text)[0][1] < fresh


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    port, ckpt = free_port(), tmp_path / "ckpt"
    args = [*MLP, "--steps", "100000", "--log-interval", "50", "--checkpoint-every", "1000000"]
    procs = [launch(args, rank=r, world=2, port=port, ckpt=ckpt, log=tmp_path / f"r{r}.log") for r in (0, 1)]
    # Wait until training is under way (first log line), then stop the gang as a backend does.
    import time

    deadline = time.monotonic() + 90
    while not steps((tmp_path / "r0.log").read_text()) and time.monotonic() < deadline:
        assert procs[0].poll() is None, (tmp_path / "r0.log").read_text()
        time.sleep(0.1)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    assert [p.wait(timeout=60) for p in procs] == [143, 143]
    r0, r1 = ((tmp_path / f"r{r}.log").read_text() for r in (0, 1))
    assert "Traceback" not in r0 + r1
    line = next(ln for ln in r0.splitlines() if ln.startswith("SIGTERM: checkpoint saved at step="))
    step = int(line.split("step=")[1].split()[0])
    assert step >= 50 and (ckpt / f"ckpt-{step:08d}.pt").exists()
    assert torch.load(ckpt / f"ckpt-{step:08d}.pt", weights_only=True)["step"] == step
    assert "SIGTERM: stopped at step=" in r1 and "peak_memory_bytes=" in r0 and "peak_memory_bytes=" in r1


def test_sigterm_while_stuck_in_a_collective_uses_the_watchdog(tmp_path):
    """Rank 1 frozen (SIGSTOP): rank 0 blocks inside DDP's all-reduce, where Python's handler cannot
    run. The watchdog saves the last completed step after --stop-grace and exits 143."""
    port, ckpt = free_port(), tmp_path / "ckpt"
    args = [*MLP, "--steps", "100000", "--log-interval", "20", "--checkpoint-every", "1000000",
            "--stop-grace", "1"]
    procs = [launch(args, rank=r, world=2, port=port, ckpt=ckpt, log=tmp_path / f"r{r}.log") for r in (0, 1)]
    try:
        import time

        deadline = time.monotonic() + 90
        while not steps((tmp_path / "r0.log").read_text()) and time.monotonic() < deadline:
            assert procs[0].poll() is None, (tmp_path / "r0.log").read_text()
            time.sleep(0.1)
        procs[1].send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # rank 0 is now waiting for rank 1 in the next all-reduce
        procs[0].send_signal(signal.SIGTERM)
        assert procs[0].wait(timeout=30) == 143
    finally:
        procs[1].kill()
        procs[1].wait()
    r0 = (tmp_path / "r0.log").read_text()
    step = int(r0.split("SIGTERM: checkpoint saved at step=")[1].split()[0])
    assert step >= 20 and "Traceback" not in r0 and "peak_memory_bytes=" in r0
    assert "(watchdog)" in r0.split("SIGTERM: checkpoint saved")[1].splitlines()[0]
    assert torch.load(ckpt / f"ckpt-{step:08d}.pt", weights_only=True)["step"] == step

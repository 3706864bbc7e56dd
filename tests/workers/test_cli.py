"""workers.train's command line: factory_for_argv, flag validation, the rendezvous environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workers.rendezvous import Rendezvous, choose_threads, peak_memory_lines
from workers.train import factory_for_argv, parse

from .helpers import ROOT


@pytest.mark.parametrize("prefix", [
    ["python", "-m", "workers.train"], ["/usr/bin/python3.11", "-u", "-m", "workers.train"],
    ["python", "workers/train.py"], ["-m", "workers.train"],
])
def test_factory_for_argv_skips_the_interpreter(prefix):
    path, kwargs = factory_for_argv([*prefix, "--kernel", "mlp", "--batch-size", "64", "--hidden", "32,16"])
    assert path == "kernels.mlp:factory"
    assert kwargs == {"batch_size": 64, "hidden": (32, 16)}


def test_factory_for_argv_keeps_only_hyperparameters():
    path, kwargs = factory_for_argv(["python", "-m", "workers.train", "--kernel", "transformer", "--steps", "9",
                                     "--fast", "--no-compile", "--lr", "0.01", "--log-interval", "3"])
    assert path == "kernels.transformer:factory"
    assert kwargs == {"fast": True, "compile": False, "lr": 0.01}


def test_factory_for_argv_result_calls_the_factory():
    import importlib

    path, kwargs = factory_for_argv(["python", "-m", "workers.train", "--kernel", "logreg", "--batch-size", "8"])
    module, func = path.split(":")
    model, _, (x, y), loss_fn = getattr(importlib.import_module(module), func)(**kwargs)
    assert x.shape[0] == 8 and loss_fn(model(x), y).dim() == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["python", "train.py", "--kernel", "mlp"], "not a workers.train command"),
    (["bash", "-c", "echo hi"], "not a workers.train command"),
    (["python", "-m", "workers.train"], "--kernel"),
    (["python", "-m", "workers.train", "--kernel", "resnet"], "resnet"),
    (["python", "-m", "workers.train", "--kernel", "mlp", "--batch-size", "many"], "batch_size"),
    (["python", "-m", "workers.train", "--kernel", "mlp", "--heads", "2"], "--heads"),
    (["python", "-m", "workers.train", "--kernel", "mlp", "--framework", "mxnet"], "framework"),
])
def test_factory_for_argv_rejects(argv, message):
    with pytest.raises(ValueError, match=message):
        factory_for_argv(argv)


def test_mxnet_only_for_mlp_and_cnn():
    with pytest.raises(ValueError, match="framework: mxnet supports"):
        parse(["--kernel", "transformer", "--framework", "mxnet"])
    opts, _ = parse(["--kernel", "cnn", "--framework", "mxnet"])
    assert opts.framework == "mxnet"


def test_bad_flag_exits_2_with_the_field_named():
    r = subprocess.run([sys.executable, "-m", "workers.train", "--kernel", "mlp", "--lr", "-1"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "lr: must be positive" in r.stderr and "Traceback" not in r.stderr


def test_rendezvous_from_env():
    r = Rendezvous.from_env({"MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "2345", "WORLD_SIZE": "4", "RANK": "3",
                             "LOCAL_RANK": "1", "JOBSCHED_JOB": "ns/j", "JOBSCHED_ATTEMPT": "2",
                             "JOBSCHED_CHECKPOINT_DIR": "/ck"})
    assert (r.master_addr, r.master_port, r.world_size, r.rank, r.local_rank) == ("10.0.0.5", 2345, 4, 3, 1)
    assert (r.job, r.attempt, r.checkpoint_dir, r.master_is_local) == ("ns/j", 2, "/ck", False)
    assert Rendezvous.from_env({}) == Rendezvous()


@pytest.mark.parametrize(("env", "name"), [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE"), ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK"),
    ({"MASTER_PORT": "70000"}, "MASTER_PORT"), ({"WORLD_SIZE": "0"}, "WORLD_SIZE"),
])
def test_rendezvous_errors_name_the_variable(env, name):
    with pytest.raises(ValueError, match=f"environment variable {name}"):
        Rendezvous.from_env(env)


def test_threads_shared_by_local_replicas(monkeypatch):
    monkeypatch.setattr("workers.rendezvous.cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert choose_threads(3, Rendezvous(), {}) == 3
    assert choose_threads(0, Rendezvous(), {"OMP_NUM_THREADS": "2"}) == 2
    assert choose_threads(0, Rendezvous(world_size=4, rank=1), {}) == 2  # 4 replicas on this host
    assert choose_threads(0, Rendezvous(master_addr="node-a", world_size=4, rank=1), {}) == 8
    monkeypatch.setattr("workers.rendezvous.cgroup_cpu_limit", lambda: 1.5)
    assert choose_threads(0, Rendezvous(), {}) == 2


def test_peak_memory_line_is_bytes():
    (line,) = peak_memory_lines()
    assert line.startswith("peak_memory_bytes=") and int(line.split("=")[1]) > 10 * 2**20
    assert peak_memory_lines(123)[1] == "peak_gpu_memory_bytes=123"

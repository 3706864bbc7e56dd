"""The MXNet training loop of one replica (run it with the .venv-mxnet interpreter; imports no torch).

One replica: kvstore ``device``. Several: kvstore ``dist_sync`` over ps-lite, mapped onto jobsched's
rendezvous environment: rank 0 also starts the ps-lite scheduler (listening on MASTER_PORT) and one
parameter server as child processes, and every rank joins as a worker. Gradients are aggregated on the
server and each worker applies the optimizer locally (update_on_kvstore=False), so every rank holds
the same optimizer state and rank 0's checkpoint is the job's. Checkpoints are pickles
``ckpt-<step:08d>.mxnet`` (parameters by structural name as NumPy arrays, trainer state bytes).
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kernels.configs import Common
from workers import checkpoint
from workers.rendezvous import Rendezvous, choose_threads, peak_memory_lines
from workers.stopping import EXIT_SIGTERM, Stopper

# A ps-lite scheduler or server: importing mxnet with DMLC_ROLE set runs the role's loop. The thread
# ends the child when its parent (rank 0) is gone, so no orphan outlives a SIGKILLed replica.
_ROLE = ("import os, threading, time\n"
         "ppid = os.getppid()\n"
         "def watch():\n"
         "    while os.getppid() == ppid: time.sleep(0.5)\n"
         "    os._exit(0)\n"
         "threading.Thread(target=watch, daemon=True).start()\n"
         "from kernels.mxnet_compat import import_mxnet; import_mxnet()\n")


def _ps_env(rdzv: Rendezvous, role: str) -> dict[str, str]:
    env = {"DMLC_ROLE": role, "DMLC_PS_ROOT_URI": rdzv.master_addr, "DMLC_PS_ROOT_PORT": str(rdzv.master_port),
           "DMLC_NUM_SERVER": "1", "DMLC_NUM_WORKER": str(rdzv.world_size)}
    if rdzv.master_is_local:
        env["DMLC_NODE_HOST"] = "127.0.0.1"
    return env


def _start_ps(rdzv: Rendezvous) -> list[subprocess.Popen[bytes]]:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    return [subprocess.Popen([sys.executable, "-c", _ROLE], env={**env, **_ps_env(rdzv, role)})
            for role in ("scheduler", "server")]


def _stop_ps(children: list[subprocess.Popen[bytes]], wait: float) -> None:
    for child in children:
        try:
            child.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class MXTrainer:
    def __init__(self, opts: argparse.Namespace, cfg: Common, rdzv: Rendezvous, kvstore: Any) -> None:
        from kernels import mxnet_kernels as mk

        self.mk, self.opts, self.cfg, self.rdzv = mk, opts, cfg, rdzv
        self.net, self.trainer, self.loss_fn = mk.build(opts.kernel, cfg, kvstore)
        self.ckpt_dir = opts.checkpoint_dir or rdzv.checkpoint_dir
        self.step, self.saved_step, self.ready = 0, -1, False

    def _trainer_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            self.trainer.save_states(os.path.join(d, "states"))
            return Path(d, "states").read_bytes()

    def save(self) -> None:
        if self.rdzv.rank != 0 or not self.ckpt_dir or self.saved_step == self.step or not self.ready:
            return
        state = {"step": self.step, "kernel": self.opts.kernel, "framework": "mxnet",
                 "config": self.cfg.as_kwargs(), "trainer": self._trainer_bytes(),
                 "params": {k: p.data().asnumpy() for k, p in self.mk.named_params(self.net).items()}}
        def write(path: Path) -> None:
            path.write_bytes(pickle.dumps(state))

        checkpoint.save(self.ckpt_dir, self.step, write, suffix=checkpoint.MXNET_SUFFIX,
                        keep=self.opts.keep_checkpoints)
        self.saved_step = self.step

    def resume(self) -> None:
        found = checkpoint.load_latest(self.ckpt_dir, lambda p: pickle.loads(p.read_bytes()),
                                       suffix=checkpoint.MXNET_SUFFIX)
        if found is not None:
            step, state = found
            if state.get("kernel") != self.opts.kernel:
                raise ValueError(f"checkpoint-dir: ckpt-{step:08d}.mxnet was written by kernel "
                                 f"{state.get('kernel')!r}, not {self.opts.kernel!r}")
            for name, param in self.mk.named_params(self.net).items():
                param.set_data(self.mk.nd.array(state["params"][name]))
            with tempfile.TemporaryDirectory() as d:
                Path(d, "states").write_bytes(state["trainer"])
                self.trainer.load_states(os.path.join(d, "states"))
            self.step = self.saved_step = int(state["step"])
            print(f"resumed from checkpoint step={self.step} rank={self.rdzv.rank}", flush=True)
        self.ready = True


def _stop(t: MXTrainer) -> int:
    t.save()
    if t.rdzv.rank == 0 and t.ckpt_dir:
        print(f"SIGTERM: checkpoint saved at step={t.step}", flush=True)
    else:
        print(f"SIGTERM: stopped at step={t.step} rank={t.rdzv.rank}", flush=True)
    return EXIT_SIGTERM


def train(t: MXTrainer, stopper: Stopper) -> int:
    opts, rdzv, bs = t.opts, t.rdzv, t.cfg.batch_size
    pending: list[Any] = []
    t0 = time.perf_counter()
    while t.step < opts.steps:
        if stopper.requested:
            stopper.acknowledge()
            with stopper.lock:
                return _stop(t)
        x, y = t.mk.batch(opts.kernel, t.cfg, t.step * rdzv.world_size + rdzv.rank)
        with stopper.lock:
            pending.append(t.mk.train_step(t.net, t.trainer, t.loss_fn, x, y))
            t.mk.nd.waitall()
            t.step += 1
        if t.step % opts.log_interval == 0 or t.step == opts.steps:
            loss = sum(float(v.asscalar()) for v in pending) / len(pending)
            rate = len(pending) * bs / (time.perf_counter() - t0)
            print(f"step={t.step} loss={loss:.4f} samples/s={rate:.1f} rank={rdzv.rank}", flush=True)
            if rdzv.world_size > 1:  # replicas in step hold the same weights
                print(f"weights step={t.step} digest={t.mk.param_digest(t.net)} rank={rdzv.rank}", flush=True)
            pending, t0 = [], time.perf_counter()
        if opts.checkpoint_every and t.step % opts.checkpoint_every == 0:
            with stopper.lock:
                t.save()
    with stopper.lock:
        t.save()
    print(f"done step={t.step} rank={rdzv.rank}", flush=True)
    return 0


def run(opts: argparse.Namespace, cfg: Common, rdzv: Rendezvous) -> int:
    stopper = Stopper(grace=opts.stop_grace)
    stopper.install()
    threads = choose_threads(opts.threads, rdzv)
    os.environ["OMP_NUM_THREADS"] = os.environ["MXNET_CPU_WORKER_NTHREADS"] = str(threads)
    children: list[subprocess.Popen[bytes]] = []
    holder: dict[str, MXTrainer] = {}

    def fallback() -> int:
        code = _stop(holder["t"]) if "t" in holder and holder["t"].ready else EXIT_SIGTERM
        for line in peak_memory_lines():
            print(line, flush=True)
        for child in children:
            child.kill()
        return code

    stopper.fallback = fallback
    code = 1
    try:
        kvstore: Any = "device"
        if rdzv.world_size > 1:
            os.environ.update(_ps_env(rdzv, "worker"))
            if rdzv.rank == 0:
                children = _start_ps(rdzv)
        from kernels.mxnet_compat import import_mxnet

        mx = import_mxnet()
        if rdzv.world_size > 1:
            kvstore = mx.kv.create("dist_sync")
        print(f"start kernel={opts.kernel} framework=mxnet rank={rdzv.rank} world_size={rdzv.world_size} "
              f"device=cpu fast={cfg.fast} threads={threads} kvstore={kvstore if isinstance(kvstore, str) else kvstore.type} "
              f"job={rdzv.job or '-'} attempt={rdzv.attempt}", flush=True)
        holder["t"] = MXTrainer(opts, cfg, rdzv, kvstore)
        holder["t"].resume()
        holder["t"].mk.start_in_step(holder["t"].trainer, kvstore)
        code = train(holder["t"], stopper)
        del kvstore
    except ValueError as e:
        print(f"workers.train: error: {e}", file=sys.stderr, flush=True)
        code = 2
    finally:
        for line in peak_memory_lines():
            print(line, flush=True)
    if code == EXIT_SIGTERM:
        for child in children:
            child.kill()
        sys.stdout.flush()
        os._exit(code)
    holder.clear()  # drop the kvstore: its destructor stops the ps-lite server after a final barrier
    gc.collect()
    _stop_ps(children, wait=30)
    return code

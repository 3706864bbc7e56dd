"""The PyTorch training loop of one replica: DDP setup, logging, checkpoints, SIGTERM, peak memory."""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from kernels.configs import Common
from kernels.torch_common import unwrap
from workers import checkpoint
from workers.rendezvous import Rendezvous, choose_threads, peak_memory_lines
from workers.stopping import EXIT_SIGTERM, Stopper


class Trainer:
    """Model, optimizer and step counter of one replica, plus checkpoint I/O (rank 0 writes)."""

    def __init__(self, opts: argparse.Namespace, cfg: Common, rdzv: Rendezvous) -> None:
        self.opts, self.cfg, self.rdzv = opts, cfg, rdzv
        self.kernel = importlib.import_module(f"kernels.{opts.kernel}")
        self.ckpt_dir = opts.checkpoint_dir or rdzv.checkpoint_dir
        self.model, self.optimizer, self.loss_fn = self.kernel.build(cfg)
        self.step = 0  # optimizer steps completed
        self.saved_step = -1
        self.ready = False  # set once the resumed state is in place; before that nothing is saved

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "kernel": self.opts.kernel, "config": self.cfg.as_kwargs(),
                "model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "world_size": self.rdzv.world_size, "job": self.rdzv.job, "attempt": self.rdzv.attempt}

    def save(self) -> Path | None:
        """Rank 0: write checkpoint ``step`` unless it is already on disk. Others: nothing."""
        if self.rdzv.rank != 0 or not self.ckpt_dir or self.saved_step == self.step or not self.ready:
            return None
        state = self.state()
        path = checkpoint.save(self.ckpt_dir, self.step, lambda p: torch.save(state, p),
                               keep=self.opts.keep_checkpoints)
        self.saved_step = self.step
        return path

    def resume(self) -> None:
        found = checkpoint.load_latest(
            self.ckpt_dir, lambda p: torch.load(p, map_location=self.kernel.device_of(self.cfg), weights_only=True))
        if found is None:
            self.ready = True
            return
        step, state = found
        if state.get("kernel") != self.opts.kernel:
            raise ValueError(f"checkpoint-dir: ckpt-{step:08d}.pt was written by kernel {state.get('kernel')!r}, "
                             f"not {self.opts.kernel!r}")
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = self.saved_step = int(state["step"])
        self.ready = True
        print(f"resumed from checkpoint step={self.step} rank={self.rdzv.rank}", flush=True)


def _setup(cfg: Common, rdzv: Rendezvous, opts: argparse.Namespace) -> None:
    threads = choose_threads(opts.threads, rdzv)
    torch.set_num_threads(threads)
    if cfg.device == "cuda":
        # jobsched gives each replica only its own devices (CUDA_VISIBLE_DEVICES): index among those
        torch.cuda.set_device(rdzv.local_rank % max(torch.cuda.device_count(), 1))
        apply_gpu_memory_limit()
    if rdzv.world_size > 1:
        dist.init_process_group(
            backend="nccl" if cfg.device == "cuda" else "gloo", rank=rdzv.rank, world_size=rdzv.world_size,
            init_method=f"tcp://{rdzv.master_addr}:{rdzv.master_port}",
            timeout=datetime.timedelta(seconds=opts.dist_timeout))
    print(f"start kernel={opts.kernel} framework=torch rank={rdzv.rank} world_size={rdzv.world_size} "
          f"device={cfg.device} fast={cfg.fast} threads={threads} job={rdzv.job or '-'} "
          f"attempt={rdzv.attempt}", flush=True)


def _wrap(model: torch.nn.Module, cfg: Common, rdzv: Rendezvous) -> torch.nn.Module:
    """DDP around the (possibly compiled) model: the compiled graph runs forward and backward, DDP's
    gradient hooks all-reduce as the backward graph produces each gradient."""
    if rdzv.world_size == 1:
        return model
    return DistributedDataParallel(model, device_ids=[rdzv.local_rank] if cfg.device == "cuda" else None)


def _stop(trainer: Trainer, where: str) -> int:
    """Rank 0 saves the last completed step; every rank says where it stopped. Returns 143."""
    path = trainer.save() if trainer.rdzv.rank == 0 else None
    if trainer.rdzv.rank == 0 and trainer.ckpt_dir:
        notes = [n for n in ("" if path else "already on disk", "" if where == "step boundary" else where) if n]
        print(f"SIGTERM: checkpoint saved at step={trainer.step}" + (f" ({'; '.join(notes)})" if notes else ""),
              flush=True)
    else:
        print(f"SIGTERM: stopped at step={trainer.step} rank={trainer.rdzv.rank} ({where}; "
              f"{'rank 0 writes checkpoints' if trainer.ckpt_dir else 'no checkpoint dir'})", flush=True)
    return EXIT_SIGTERM


def train(trainer: Trainer, stopper: Stopper) -> int:
    opts, cfg, rdzv = trainer.opts, trainer.cfg, trainer.rdzv
    model = _wrap(trainer.model, cfg, rdzv)
    loss_sum, n, t0 = torch.zeros((), device=trainer.kernel.device_of(cfg)), 0, time.perf_counter()
    while trainer.step < opts.steps:
        if stopper.requested:
            stopper.acknowledge()
            with stopper.lock:
                return _stop(trainer, "step boundary")
        x, y = trainer.kernel.make_batch(cfg, trainer.step * rdzv.world_size + rdzv.rank)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss = trainer.loss_fn(model(x), y)
        loss.backward()
        with stopper.lock:
            trainer.optimizer.step()
            trainer.step += 1
        loss_sum += loss.detach()
        n += 1
        if trainer.step % opts.log_interval == 0 or trainer.step == opts.steps:
            elapsed = time.perf_counter() - t0
            print(f"step={trainer.step} loss={float(loss_sum) / n:.4f} "
                  f"samples/s={n * cfg.batch_size / elapsed:.1f} rank={rdzv.rank}", flush=True)
            loss_sum.zero_()
            n, t0 = 0, time.perf_counter()
        if opts.checkpoint_every and trainer.step % opts.checkpoint_every == 0:
            with stopper.lock:
                trainer.save()
    with stopper.lock:
        trainer.save()
    print(f"done step={trainer.step} rank={rdzv.rank}", flush=True)
    return 0


def run(opts: argparse.Namespace, cfg: Common, rdzv: Rendezvous) -> int:
    stopper = Stopper(grace=opts.stop_grace)
    stopper.install()
    trainer: Trainer | None = None

    def fallback() -> int:  # the watchdog thread, when the loop did not reach a step boundary in time
        code = _stop(trainer, "watchdog") if trainer and trainer.ready else EXIT_SIGTERM
        if trainer is None or not trainer.ready:
            print("SIGTERM: before the first step, no checkpoint written", flush=True)
        _report_peak(cfg)
        return code

    stopper.fallback = fallback
    code = 1
    try:
        _setup(cfg, rdzv, opts)
        trainer = Trainer(opts, cfg, rdzv)
        trainer.resume()
        code = train(trainer, stopper)
    except ValueError as e:
        print(f"workers.train: error: {e}", file=sys.stderr, flush=True)
        code = 2
    except torch.cuda.OutOfMemoryError:
        report_cuda_oom()
        raise
    except RuntimeError as e:  # a collective failed: a peer stopped (SIGTERM) or crashed
        if trainer is None or not stopper.wait_requested(2.0):
            raise
        stopper.acknowledge()
        with stopper.lock:
            code = _stop(trainer, f"collective interrupted: {type(e).__name__}")
    finally:
        _report_peak(cfg)
    if code == EXIT_SIGTERM:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # skip process-group teardown, which can block when a peer is already gone
    if dist.is_initialized():
        dist.destroy_process_group()
    return code


def _report_peak(cfg: Common) -> None:
    gpu = torch.cuda.max_memory_allocated() if cfg.device == "cuda" and torch.cuda.is_initialized() else None
    for line in peak_memory_lines(gpu):
        print(line, flush=True)


def apply_gpu_memory_limit() -> float | None:
    """Cap this process's share of its GPU at ``JOBSCHED_GPU_MEMORY_LIMIT`` bytes (set by jobsched for
    a GPU share): growth past it ends in this process's own CUDA OOM, never a neighbour's. Returns
    the fraction applied."""
    raw = os.environ.get("JOBSCHED_GPU_MEMORY_LIMIT", "")
    if not raw.isdigit() or not int(raw) or not torch.cuda.is_available():
        return None
    dev = torch.cuda.current_device()
    total = torch.cuda.get_device_properties(dev).total_memory
    fraction = min(int(raw) / total, 1.0)
    torch.cuda.set_per_process_memory_fraction(fraction, dev)
    print(f"gpu memory limit {int(raw)} bytes ({fraction:.3f} of the device)", flush=True)
    return fraction


def report_cuda_oom() -> None:
    """The line jobsched reads after a CUDA OOM: the device peak (reserved by the caching allocator)."""
    peak = torch.cuda.max_memory_reserved() if torch.cuda.is_initialized() else 0
    limit = os.environ.get("JOBSCHED_GPU_MEMORY_LIMIT", "")
    print(f"jobsched: CUDA out of memory: device_peak_bytes={peak}"
          + (f" device_limit_bytes={limit}" if limit else ""), file=sys.stderr, flush=True)

"""Replica entrypoint: ``python -m workers.train --kernel NAME [--framework torch|mxnet] [flags]``.

Usable as a TrainingJob's command. Reads jobsched's rendezvous environment (MASTER_ADDR, MASTER_PORT,
WORLD_SIZE, RANK, LOCAL_RANK, JOBSCHED_JOB, JOBSCHED_ATTEMPT, JOBSCHED_CHECKPOINT_DIR), trains with
DistributedDataParallel (gloo on CPU, nccl on GPU) or MXNet's kvstore, logs
``step=N loss=L samples/s=S rank=R`` every --log-interval steps, checkpoints atomically to
``$JOBSCHED_CHECKPOINT_DIR/ckpt-<step:08d>.pt`` (rank 0 writes, every rank resumes from the newest),
saves and exits 143 on SIGTERM, and prints ``peak_memory_bytes=N`` at exit. See docs/kernels.md.

Hyperparameter flags are the fields of the kernel's config (kernels/configs.py), ``batch_size`` as
``--batch-size``; :func:`factory_for_argv` maps a command line to the kernel factory and its kwargs.
This module imports neither torch nor mxnet at import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any, NoReturn

from kernels import MXNET_NAMES, NAMES, factory_path
from kernels.configs import CONFIGS, Common

FRAMEWORKS = ("torch", "mxnet")
_MODULE = "workers.train"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises ValueError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _base_parser() -> _Parser:
    p = _Parser(prog="python -m workers.train", add_help=False, allow_abbrev=False)
    p.add_argument("--kernel", required=True, choices=NAMES)
    p.add_argument("--framework", default="torch", choices=FRAMEWORKS)
    return p


def build_parser(kernel: str) -> _Parser:
    """The full parser for one kernel: worker flags plus the kernel's hyperparameters."""
    p = _Parser(prog="python -m workers.train", description=__doc__, allow_abbrev=False,
                formatter_class=argparse.RawDescriptionHelpFormatter, parents=[_base_parser()])
    w = p.add_argument_group("worker")
    w.add_argument("--steps", type=int, default=100, help="train until this many steps (total, across resumes)")
    w.add_argument("--log-interval", type=int, default=10, help="steps per log line")
    w.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (0: only at "
                   "the end and on SIGTERM)")
    w.add_argument("--keep-checkpoints", type=int, default=3, help="newest checkpoints to keep")
    w.add_argument("--checkpoint-dir", default=None, help="default: $JOBSCHED_CHECKPOINT_DIR (with "
                   "neither, no checkpoints are written)")
    w.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: from OMP_NUM_THREADS, "
                   "cgroup quota and affinity, shared by same-host replicas)")
    w.add_argument("--stop-grace", type=float, default=5.0, help="seconds the watchdog waits for the loop "
                   "to react to SIGTERM before saving from its own thread")
    w.add_argument("--dist-timeout", type=float, default=300.0, help="seconds for rendezvous/collectives")
    h = p.add_argument_group(f"{kernel} hyperparameters (factory kwargs)")
    cfg_cls = CONFIGS[kernel]
    hints = typing.get_type_hints(cfg_cls)
    for f in dataclasses.fields(cfg_cls):
        flag = "--" + f.name.replace("_", "-")
        if hints[f.name] in (bool, bool | None):
            h.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=f"default: {f.default}")
        else:
            default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            h.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, metavar="V", help=f"default: {default}")
    return p


def parse(args: list[str]) -> tuple[argparse.Namespace, Common]:
    """(worker options, kernel config) from the arguments after ``-m workers.train``."""
    known, _ = _base_parser().parse_known_args(args)
    opts = build_parser(known.kernel).parse_args(args)
    cfg_cls = CONFIGS[opts.kernel]
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    cfg = cfg_cls.from_kwargs(**{k: v for k, v in vars(opts).items() if k in names})
    opts.explicit = sorted(k for k in vars(opts) if k in names)
    if opts.framework == "mxnet" and opts.kernel not in MXNET_NAMES:
        raise ValueError(f"framework: mxnet supports kernels {', '.join(MXNET_NAMES)}, not {opts.kernel!r}")
    for name in ("steps", "log_interval"):
        if getattr(opts, name) < 1:
            raise ValueError(f"{name.replace('_', '-')}: must be >= 1")
    return opts, cfg


def _worker_args(argv: list[str]) -> list[str]:
    for i, part in enumerate(argv):
        if part == _MODULE and i > 0 and argv[i - 1] == "-m":
            return argv[i + 1:]
        if part.replace("\\", "/").endswith("workers/train.py"):
            return argv[i + 1:]
    raise ValueError(f"not a workers.train command (expected '-m workers.train' or workers/train.py): {argv!r}")


def factory_for_argv(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """("kernels.<name>:factory", kwargs) for a replica command line such as
    ``["python", "-m", "workers.train", "--kernel", "mlp", "--batch-size", "64"]``.

    kwargs hold the hyperparameters given on the command line (typed), so the factory's defaults
    apply to the rest. ValueError for an argv that is not a valid workers.train command, and for
    ``--framework mxnet`` (there is no PyTorch factory to size an MXNet job from)."""
    opts, cfg = parse(_worker_args(list(argv)))
    if opts.framework != "torch":
        raise ValueError(f"framework: {opts.framework} jobs have no PyTorch factory to estimate from")
    return factory_path(opts.kernel), {k: getattr(cfg, k) for k in opts.explicit}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") and "--kernel" not in args:
        print(f"usage: python -m workers.train --kernel {{{','.join(NAMES)}}} [--framework torch|mxnet] "
              "[flags]\n(add --kernel NAME --help for that kernel's flags)")
        return 0 if args else 2
    try:
        opts, cfg = parse(args)
        from workers.rendezvous import Rendezvous

        rdzv = Rendezvous.from_env()
    except ValueError as e:
        print(f"workers.train: error: {e}", file=sys.stderr)
        return 2
    if opts.framework == "mxnet":
        from workers.mxnet_loop import run as run_mxnet

        return run_mxnet(opts, cfg, rdzv)
    from workers.torch_loop import run as run_torch

    return run_torch(opts, cfg, rdzv)


if __name__ == "__main__":
    raise SystemExit(main())

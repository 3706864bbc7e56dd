"""examples/ddp-*.yaml: valid TrainingJobs whose replica command trains a converging configuration.

The 2-process DDP mechanics are covered by test_replicas.py; here each example's exact hyperparameters
are trained in-process on rank 0's share of the data for the example's step count (cheap), and the
loss must fall. docs/kernels.md lists the wall times of the full 2-replica runs.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from jobsched.spec.job import TrainingJob
from workers.train import factory_for_argv, parse

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("ddp-*.yaml"))
pytestmark = pytest.mark.torch


def test_one_example_per_kernel():
    assert {p.stem for p in EXAMPLES} == {"ddp-mlp", "ddp-cnn", "ddp-transformer", "ddp-logreg"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid_and_converges(path):
    job = TrainingJob.model_validate(yaml.safe_load(path.read_text()))
    assert job.spec.replicas == 2
    argv = job.spec.template.argv()
    factory, _ = factory_for_argv(argv)
    opts, cfg = parse(argv[3:])
    assert factory == f"kernels.{opts.kernel}:factory"
    torch.set_num_threads(1)
    mod = importlib.import_module(f"kernels.{opts.kernel}")
    model, optimizer, loss_fn = mod.build(cfg)
    losses = []
    for step in range(opts.steps):
        x, y = mod.make_batch(cfg, step * 2)  # rank 0 of 2
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    k = opts.log_interval
    assert sum(losses[-k:]) / k < 0.8 * sum(losses[:5]) / 5, (losses[:5], losses[-k:])


def test_mxnet_example_is_valid():
    path = EXAMPLES[0].parent / "mxnet-mlp.yaml"
    from jobsched.sdk.client import _working_dir_from_file

    manifest = yaml.safe_load(path.read_text())
    _working_dir_from_file(manifest, path.parent)  # as `jobsched submit` resolves a relative workingDir
    job = TrainingJob.model_validate(manifest)
    assert job.spec.template.working_dir == str(path.parent.parent)
    argv = job.spec.template.argv()
    opts, cfg = parse(argv[3:])
    assert (opts.framework, opts.kernel, cfg.fast, job.spec.replicas) == ("mxnet", "mlp", True, 2)
    with pytest.raises(ValueError, match="framework"):
        factory_for_argv(argv)  # no torch factory for an MXNet job

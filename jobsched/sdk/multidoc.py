"""Files of several documents: jobs (of any accepted kind) submitted, queues (jobsched, Kueue,
Volcano) applied. Every document is read and validated before the first is sent, so one bad
document stores nothing (a refusal by the server itself, e.g. a queue that does not exist, can
still come after earlier documents were stored: each is its own request)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobsched.sdk.errors import InvalidSpec
from jobsched.spec import yamlsafe
from jobsched.spec.errors import SpecError

if TYPE_CHECKING:
    from jobsched.sdk.client import Client
    from jobsched.spec.api import QueueStatus


def load_documents(path: str | Path) -> list[tuple[dict[str, Any], Any]]:
    """Every non-empty document of a YAML file, with its node tree (for line numbers)."""
    p = Path(path)
    try:
        docs = yamlsafe.loads_all(yamlsafe.load_file(p), str(p))
    except SpecError as e:
        raise InvalidSpec(str(e)) from None
    out = []
    for i, (data, node) in enumerate(docs):
        if data is None:
            continue
        if not isinstance(data, dict):
            line = node.start_mark.line + 1 if node is not None else 1
            raise InvalidSpec(f"{p}:{line}: document {i + 1}: expected a mapping (a manifest), "
                              f"got {type(data).__name__}")
        out.append((data, node))
    if not out:
        raise InvalidSpec(f"{p}: no manifest in the file")
    return out


def job_manifests(path: str | Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The job manifests of a file, each validated (converted, for other kinds) locally first. The
    Pods of a Kueue pod group become one gang TrainingJob (spec/podgroup.py); that conversion's
    warnings are appended to ``warnings``."""
    from jobsched.sdk.client import _is_training_job, _working_dir_from_file
    from jobsched.sdk.manifest import validate
    from jobsched.spec.job import TrainingJob
    from jobsched.spec.podgroup import merge_pod_groups
    from jobsched.spec.sources import to_training_job

    loaded = load_documents(path)
    try:
        merged, found = merge_pod_groups([doc for doc, _ in loaded])
    except SpecError as e:
        raise InvalidSpec(f"{path}: {e}") from None
    if warnings is not None:
        warnings += found
    nodes = {id(doc): node for doc, node in loaded}
    docs = [(doc, nodes.get(id(doc))) for doc in merged]
    out = []
    for i, (doc, node) in enumerate(docs):
        where = f"{path}: document {i + 1}" if len(docs) > 1 else str(path)
        if _is_training_job(doc) and doc.get("apiVersion", "jobsched.io/v1alpha1").startswith("jobsched.io/"):
            _working_dir_from_file(doc, Path(path).resolve().parent)
            validate(TrainingJob, doc, path, node)
        else:
            try:
                to_training_job(doc)
            except SpecError as e:
                raise InvalidSpec(f"{where}: {e}") from None
        out.append(doc)
    return out


def queue_manifests(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The queues of a file as jobsched Queue manifests, and the warnings of their conversion."""
    from jobsched.spec.sources import to_queues

    try:
        queues, warnings = to_queues([doc for doc, _ in load_documents(path)])
    except SpecError as e:
        raise InvalidSpec(f"{path}: {e}") from None
    return [q.to_manifest() for q in queues], warnings


def apply_file(client: Client, path: str | Path) -> tuple[list[QueueStatus], list[str]]:
    manifests, warnings = queue_manifests(path)
    return [client.apply_queue(m) for m in manifests], warnings

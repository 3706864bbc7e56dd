"""Which manifests jobsched accepts, by ``apiVersion`` group and ``kind``, and their conversion. Pure.

Jobs: a TrainingJob as is; Kubeflow PyTorchJob/MXJob/TFJob, a ``batch/v1`` Job, a ``v1`` Pod and
a Volcano Job or a JobSet converted to one (with warnings for what is not honoured). Queues: a jobsched Queue
as is; Kueue ClusterQueue/LocalQueue/ResourceFlavor and a Volcano Queue converted. Anything else
is refused with one line that lists the accepted kinds (docs/migrating.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from jobsched.spec.errors import SpecError, format_validation_error
from jobsched.spec.job import TrainingJob
from jobsched.spec.queue import Queue

ACCEPTED_JOBS = ("TrainingJob (jobsched.io), PyTorchJob, MXJob, TFJob (kubeflow.org), Job (batch/v1), Pod (v1), "
                 "Job (batch.volcano.sh), JobSet (jobset.x-k8s.io)")
ACCEPTED_QUEUES = ("Queue (jobsched.io), ClusterQueue, LocalQueue, ResourceFlavor (kueue.x-k8s.io), "
                   "Queue (scheduling.volcano.sh)")
_KUEUE_KINDS = ("ClusterQueue", "LocalQueue", "ResourceFlavor")


def group_of(manifest: dict[str, Any]) -> str:
    """The API group of ``apiVersion`` ("" for the core group's ``v1``)."""
    api = str(manifest.get("apiVersion") or "")
    return api.split("/", 1)[0] if "/" in api else ""


def job_converter(manifest: dict[str, Any]) -> Callable[[dict[str, Any]], tuple[TrainingJob, list[str]]] | None:
    kind, group = manifest.get("kind", "TrainingJob"), group_of(manifest)
    if kind == "TrainingJob" and group in ("jobsched.io", ""):
        return _training_job
    if group == "kubeflow.org" and kind in ("PyTorchJob", "MXJob", "TFJob"):
        from jobsched.spec.kubeflow import convert
        return convert
    if kind == "Job" and group == "batch":
        from jobsched.spec.batchjob import convert_job
        return convert_job
    if kind == "Pod" and group == "":
        from jobsched.spec.batchjob import convert_pod
        return convert_pod
    if kind == "JobSet" and group == "jobset.x-k8s.io":
        from jobsched.spec.jobset import convert as jobset
        return jobset
    if kind == "Job" and group == "batch.volcano.sh":
        from jobsched.spec.volcano import convert_job as volcano_job
        return volcano_job
    return None


def to_training_job(manifest: Any) -> tuple[TrainingJob, list[str]]:
    """Any accepted job manifest as a TrainingJob, and the warnings of its conversion."""
    if not isinstance(manifest, dict):
        raise SpecError("the manifest must be a mapping (a YAML/JSON object)")
    convert = job_converter(manifest)
    if convert is None:
        raise refusal(manifest)
    try:
        return convert(manifest)
    except SpecError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, ArithmeticError) as e:
        raise SpecError(f"malformed {manifest.get('kind')} manifest ({type(e).__name__}: {e})"[:300],
                        "spec") from None


def refusal(manifest: dict[str, Any]) -> SpecError:
    kind, api = manifest.get("kind"), manifest.get("apiVersion")
    if kind in ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"):
        return SpecError(f"kind {kind}: submit workflows with `jobsched workflow submit`", "kind")
    if is_queue(manifest):
        return SpecError(f"{kind} ({api}) is a queue: apply it with `jobsched queue apply`", "kind")
    return SpecError(f"{kind} ({api}) is not a job jobsched accepts; accepted: {ACCEPTED_JOBS}", "kind")


def is_queue(manifest: dict[str, Any]) -> bool:
    kind, group = manifest.get("kind"), group_of(manifest)
    return ((kind == "Queue" and group in ("jobsched.io", "scheduling.volcano.sh"))
            or (kind in _KUEUE_KINDS and group == "kueue.x-k8s.io"))


def to_queues(docs: list[Any]) -> tuple[list[Queue], list[str]]:
    """The queues of one file's documents (Kueue objects are read together: a LocalQueue names its
    ClusterQueue), with the warnings of their conversion; a document of another kind is refused."""
    from jobsched.spec.kueue import convert_queues
    from jobsched.spec.volcano import convert_queue

    queues: list[Queue] = []
    warnings: list[str] = []
    kueue: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        where = f"document {i + 1}" if len(docs) > 1 else ""
        if not isinstance(doc, dict) or not is_queue(doc):
            kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            api = doc.get("apiVersion") if isinstance(doc, dict) else None
            raise SpecError(f"{kind} ({api}) is not a queue jobsched accepts; accepted: {ACCEPTED_QUEUES}",
                            f"{where}: kind" if where else "kind")
        try:
            if group_of(doc) == "kueue.x-k8s.io":
                kueue.append(doc)
            elif group_of(doc) == "scheduling.volcano.sh":
                q, w = convert_queue(doc)
                queues.append(q)
                warnings += w
            else:
                queues.append(Queue.model_validate(doc))
        except ValidationError as e:
            raise SpecError(format_validation_error(e, where)) from None
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, ArithmeticError) as e:
            if isinstance(e, SpecError):
                raise
            raise SpecError(f"malformed {doc.get('kind')} manifest ({type(e).__name__}: {e})"[:300],
                            where or None) from None
    if kueue:
        try:
            more, w = convert_queues(kueue)
        except SpecError:
            raise
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, ArithmeticError) as e:
            raise SpecError(f"malformed Kueue manifest ({type(e).__name__}: {e})"[:300]) from None
        queues += more
        warnings += w
    return queues, warnings


def _training_job(manifest: dict[str, Any]) -> tuple[TrainingJob, list[str]]:
    try:
        return TrainingJob.model_validate(manifest), []
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None

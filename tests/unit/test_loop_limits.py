"""Loop sizes at lint: a count known at submit over the limit is an error naming its field; items
are produced by index without materialising a sequence."""

from __future__ import annotations

import pytest

from jobsched.workflows.lint import LintError, load
from jobsched.workflows.loops import Items
from jobsched.workflows.model import WorkflowStep


def wf(loop: dict[str, object], params: list[dict[str, str]] | None = None) -> dict[str, object]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"entrypoint": "main", "arguments": {"parameters": params or []}, "templates": [
                {"name": "main", "dag": {"tasks": [{"name": "t", "template": "c", **loop},
                                          {"name": "x", "template": "c"}]}},
                {"name": "c", "container": {"image": "a", "command": ["true"]}}]}}


@pytest.mark.parametrize("loop, params, field, n", [
    ({"withSequence": {"count": "1000000000"}}, None, "withSequence.count", 1000000000),
    ({"withSequence": {"start": "5", "end": "20005"}}, None, "withSequence.end", 20001),
    ({"withSequence": {"count": "{{workflow.parameters.n}}"}}, [{"name": "n", "value": "10001"}],
     "withSequence.count", 10001),
    ({"withItems": list(range(10001))}, None, "withItems", 10001),
])
def test_over_the_limit_names_the_field(loop, params, field, n) -> None:
    with pytest.raises(LintError) as e:
        load(wf(loop, params))
    assert e.value.errors == [f"spec.templates[0].dag.tasks[0].{field}: {n} items exceed the limit of "
                              "10000 per loop (server setting --max-loop-items / JOBSCHED_MAX_LOOP_ITEMS)"]


def test_limits_are_configurable_and_run_time_counts_pass_lint() -> None:
    load(wf({"withSequence": {"count": "10000"}}))
    load(wf({"withSequence": {"count": "20000"}}), max_loop_items=20000)
    load(wf({"withSequence": {"count": "{{tasks.x.outputs.result}}"}}))  # known at run time only
    with pytest.raises(LintError, match="withSequence.count: must not be negative"):
        load(wf({"withSequence": {"count": "-1"}}))


def test_sequence_items_by_index() -> None:
    step = WorkflowStep.model_validate({"name": "s", "template": "c",
                                        "withSequence": {"start": "3", "end": "1", "format": "w%02d"}})
    items = Items(step, {}, 10)
    assert len(items) == 3 and [items[i] for i in range(3)] == ["w03", "w02", "w01"]
    big = Items(WorkflowStep.model_validate({"name": "s", "template": "c",
                                             "withSequence": {"count": "1000000"}}), {}, 10**6)
    assert len(big) == 10**6 and big[999_999] == "999999" and big._list is None

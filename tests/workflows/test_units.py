"""Pure pieces: the expression language, substitution, durations, backoff arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobsched.workflows import expr
from jobsched.workflows.engine import Operator
from jobsched.workflows.model import Workflow
from jobsched.workflows.render import Unresolved, substitute
from jobsched.workflows.state import WorkflowState
from jobsched.workflows.util import item_label, parse_duration


@pytest.mark.parametrize(("text", "want"), [
    ("heads == heads", True), ("heads == tails", False), ("5 > 10", False), ("10 > 5", True),
    ("'10' == 10.0", True), ("a != b && (1 < 2 || x)", True), ("!(1 < 2)", False),
    ("tails =~ '^t'", True), ("1 <= 1 && 2 >= 3", False), ("true", True), ("false || 0", False),
])
def test_when(text: str, want: bool) -> None:
    assert expr.evaluate_when(text) is want


def test_depends_results_and_names() -> None:
    phases = {"a": "Failed", "b-2": "Succeeded", "c": "Skipped"}

    def result(task: str, res: str) -> bool:
        return {"Completed": phases[task] in ("Succeeded", "Failed")}.get(res, phases[task] == res)

    assert expr.evaluate_depends("a.Failed && b-2", result)
    assert expr.evaluate_depends("c", result)  # bare: Succeeded || Skipped || Daemoned
    assert not expr.evaluate_depends("!a.Completed || (b-2.Failed && c)", result)
    assert expr.depends_names("(a.Failed || !b-2) && c.Skipped") == ["a", "b-2", "c"]
    with pytest.raises(expr.ExprError, match="unknown task result 'Done'"):
        expr.evaluate_depends("a.Done", result)


def test_substitution_and_expressions() -> None:
    scope = {"inputs.parameters.n": "3", "retries": "2", "inputs.parameters.mem-limit": "64"}
    assert substitute("n={{inputs.parameters.n}} {{ retries }}", scope) == "n=3 2"
    assert substitute("{{=(asInt(retries) + 1) * 64}}Mi", scope) == "192Mi"
    assert substitute("{{=sprig.int(inputs.parameters['mem-limit']) * 2}}", scope) == "128"
    assert substitute("{{tasks.a.outputs.result}} {{other}}", scope, strict=False) == \
        "{{tasks.a.outputs.result}} {{other}}"
    with pytest.raises(Unresolved, match="cannot resolve {{inputs.parameters.x}}"):
        substitute("{{inputs.parameters.x}}", scope)


def test_durations_and_item_labels() -> None:
    assert parse_duration("1m30s") == 90 and parse_duration(5) == 5 and parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("soon")
    assert item_label(0, "a") == "(0:a)" and item_label(1, {"b": 2, "a": 1}) == "(1:a:1,b:2)"


def test_backoff_grows_by_factor_up_to_cap() -> None:
    wf = Workflow.model_validate(yaml.safe_load("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: b}
spec:
  entrypoint: t
  templates:
  - name: t
    retryStrategy: {limit: 9, backoff: {duration: "1s", factor: "3", cap: "5s"}}
    container: {image: x, command: ["true"]}
"""))
    st = WorkflowState(name="b", uid="u", manifest={}, created_at=0.0)
    op = Operator(st, wf, runner=None, now=0.0, workdir=Path("/nonexistent"))  # type: ignore[arg-type]
    tmpl = wf.spec.templates[0]
    assert [op.backoff(tmpl, {}, i) for i in range(4)] == [1.0, 3.0, 5.0, 5.0]

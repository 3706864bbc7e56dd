"""Argo's own examples (v3.5.11, tests/workflows/argo_examples) as a corpus: every file lints as
EXPECTED.yaml records (Argo's verdict beside jobsched's), and every runnable one reaches the phase
Argo documents, on the real Runtime (local backend, real processes, SQLite).

EXPECTED.yaml is written by tools/argo_corpus_expected.py; its ``replace`` lists are the only edits
made before a run (a command the host lacks, a long sleep shortened to fit CI), each named there.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobsched.workflows import documents, refs
from jobsched.workflows.controller import NotSuspended
from jobsched.workflows.lint import LintError

D = Path(__file__).resolve().parent / "argo_examples"
EXPECTED = yaml.safe_load((D / "EXPECTED.yaml").read_text())
FILES: dict[str, dict[str, Any]] = EXPECTED["files"]
LIBRARY = refs.library_of([d for f in EXPECTED["templateFiles"] for d in documents.parse_all((D / f).read_text())])
RUNNABLE = sorted(f for f, e in FILES.items() if e["run"])


def test_the_corpus_is_committed_with_its_license() -> None:
    assert len(FILES) >= 60
    assert sorted(FILES) == sorted(str(p.relative_to(D)) for p in D.rglob("*.yaml") if p.name != "EXPECTED.yaml")
    assert "Apache License" in (D / "LICENSE").read_text()
    assert EXPECTED["commit"] in (D / "README.md").read_text()


def _lint(f: str) -> tuple[str, list[str]]:
    try:
        documents.lint_all(documents.parse_all((D / f).read_text(), f), library=LIBRARY)
        return "pass", []
    except LintError as e:
        return "fail", e.errors


@pytest.mark.parametrize("f", sorted(FILES))
def test_lint_verdict(f: str) -> None:
    verdict, errors = _lint(f)
    e = FILES[f]
    assert verdict == e["jobschedLint"], errors
    if e["argoLint"] == "fail":
        assert verdict == "fail"  # never accept what Argo refuses
    if verdict == "fail" and e["argoLint"] == "pass" and "disagree" not in e:
        # valid Argo that jobsched cannot run: every error says so, none calls the manifest invalid
        assert all("not supported by jobsched" in x for x in errors), errors


def test_lint_agreement_with_argo() -> None:
    """The count in the report: of the files Argo lints, how many jobsched judges the same, and
    how many of the others are refused only as "not supported by jobsched" (never as invalid)."""
    judged = {f: e for f, e in FILES.items() if e["argoLint"] in ("pass", "fail")}
    agree = [f for f, e in judged.items() if e["argoLint"] == e["jobschedLint"]]
    unsupported = [f for f, e in judged.items() if f not in agree and "disagree" not in e]
    disagree = [f for f, e in judged.items() if "disagree" in e]
    assert len(agree) + len(unsupported) + len(disagree) == len(judged)
    assert disagree == [], disagree


def _docs(f: str) -> list[dict[str, Any]]:
    text = (D / f).read_text()
    for old, new in FILES[f].get("replace", []):
        assert old in text, f"{f}: replace {old!r}: not found"
        text = text.replace(old, new)
    return documents.parse_all(text, f)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_runnable_examples_reach_the_phase_argo_documents(make_harness) -> None:
    h = make_harness()
    h.ctl.interval = 0.2
    for f in EXPECTED["templateFiles"]:
        h.ctl.submit_documents(documents.parse_all((D / f).read_text(), f))
    started: dict[str, list[str]] = {}
    for f in RUNNABLE:  # all at once: they run side by side
        items = h.ctl.submit_documents(_docs(f))
        started[f] = [i["name"] for i in items if i["kind"] == "Workflow"]
    deadline = time.monotonic() + 480
    phases: dict[str, list[str]] = {}
    while len(phases) < len(started) and time.monotonic() < deadline:
        for f, names in started.items():
            if f not in phases and "resume" in FILES[f]:  # a person approving its suspended steps
                for n in names:
                    with contextlib.suppress(NotSuspended):
                        h.ctl.resume("default", n, None, FILES[f]["resume"])
            if f not in phases:
                sts = [h.ctl.get("default", n, archived=0) for n in names]
                if all(st.done for st in sts):
                    phases[f] = [st.phase for st in sts]
        time.sleep(0.5)
    wrong = {f: (p, FILES[f]["run"]) for f, p in phases.items() if any(x not in FILES[f]["run"] for x in p)}
    assert not wrong, wrong
    pending = {f: [(n.display_name, n.phase) for n in h.ctl.get("default", names[0], archived=0).nodes.values()
                   if not n.fulfilled] for f, names in started.items() if f not in phases}
    assert not pending, pending

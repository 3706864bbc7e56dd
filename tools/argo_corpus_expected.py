"""Write tests/workflows/argo_examples/EXPECTED.yaml: per upstream example, Argo's own lint verdict,
jobsched's verdict, and the phase a run must reach (or why it is not run here).

    python tools/argo_corpus_expected.py [ARGO_LINT_VERDICTS.json]

ARGO_LINT_VERDICTS.json maps each file to "pass"/"fail" as recorded from ``argo lint --offline``
(v3.5.11, built from the same module; see the README). Without it, the argo column is left as it is
in the existing EXPECTED.yaml. The exclusions and documented phases below are hand-written, each
with its reason; the jobsched column is what jobsched's lint says today (the test then pins it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from jobsched.workflows import documents, refs  # noqa: E402
from jobsched.workflows.lint import LintError  # noqa: E402

D = ROOT / "tests" / "workflows" / "argo_examples"
TEMPLATE_FILES = ["workflow-template/templates.yaml", "cluster-workflow-template/clustertemplates.yaml",
                  "dag-inline-workflowtemplate.yaml"]

ARTIFACTS = "needs an artifact repository (S3/GCS/Azure/OSS/HDFS/git/http artifacts); jobsched ignores artifacts"
NOT_RUN = {
    **dict.fromkeys(["arguments-artifacts.yaml", "artifact-disable-archive.yaml", "artifact-gc-workflow.yaml",
                     "artifact-passing-subpath.yaml", "artifact-passing.yaml", "artifact-path-placeholders.yaml",
                     "artifact-repository-ref.yaml", "artifactory-artifact.yaml", "ci.yaml", "influxdb-ci.yaml",
                     "conditional-artifacts.yaml", "dag-conditional-artifacts.yaml",
                     "exit-handler-with-artifacts.yaml", "fun-with-gifs.yaml", "global-outputs.yaml",
                     "handle-large-output-results.yaml", "hdfs-artifact.yaml", "input-artifact-azure.yaml",
                     "input-artifact-gcs.yaml", "input-artifact-git.yaml", "input-artifact-http.yaml",
                     "input-artifact-oss.yaml", "input-artifact-raw.yaml", "input-artifact-s3.yaml",
                     "map-reduce.yaml", "nested-workflow.yaml", "output-artifact-azure.yaml",
                     "output-artifact-gcs.yaml", "output-artifact-s3.yaml",
                     "webhdfs-input-output-artifacts.yaml", "work-avoidance.yaml"], ARTIFACTS),
    **dict.fromkeys(["volumes-emptydir.yaml", "volumes-existing.yaml", "volumes-pvc.yaml"],
                    "needs Kubernetes volumes shared between steps; jobsched ignores volumes"),
    **dict.fromkeys(["arguments-parameters-from-configmap.yaml", "global-parameters-from-configmap.yaml",
                     "global-parameters-from-configmap-referenced-as-local-variable.yaml", "secrets.yaml"],
                    "reads a ConfigMap or Secret from the cluster"),
    **dict.fromkeys(["sidecar.yaml", "sidecar-nginx.yaml", "sidecar-dind.yaml", "init-container.yaml"],
                    "sidecars / init containers (images' servers) are not run by jobsched"),
    **dict.fromkeys(["hello-hybrid.yaml", "hello-windows.yaml", "node-selector.yaml"],
                    "needs nodes with a label this host lacks (Windows nodes, a node selector)"),
    "exit-handler-slack.yaml": "posts to Slack: needs network access",
    **dict.fromkeys(["http-hello-world.yaml", "http-success-condition.yaml", "life-cycle-hooks-tmpl-level.yaml",
                     "life-cycle-hooks-wf-level.yaml"],
                    "its http steps call internet hosts (raw.githubusercontent.com, httpstat.us, google.com): "
                    "needs network access; tests/workflows/test_http.py runs http steps against a local server"),
    "forever.yaml": "runs forever by design",
    "retry-container-to-completion.yaml": "retries without a limit until a 20% chance succeeds: no bound "
                                          "on its run time, too slow for CI",
    "image-pull-secrets.yaml": "pulls from a private registry with a Secret",
    "pod-spec-from-previous-step.yaml": "its podSpecPatch sets resources only Kubernetes enforces",
    **dict.fromkeys(["synchronization-mutex-tmpl-level.yaml", "synchronization-mutex-wf-level.yaml",
                     "synchronization-tmpl-level.yaml", "synchronization-wf-level.yaml"],
                    "synchronization (mutex/semaphore ConfigMap) is not acted on by jobsched"),
}
# Phases Argo documents (the examples' comments, docs/ and test/e2e) where it is not Succeeded.
PHASES: dict[str, list[str]] = {
    **dict.fromkeys(["dag-continue-on-fail.yaml", "dag-disable-failFast.yaml", "dag-task-level-timeout.yaml",
                     "exit-handlers.yaml", "loops-arbitrary-sequential-steps.yaml", "pod-gc-strategy.yaml",
                     "pod-gc-strategy-with-label-selector.yaml", "step-level-timeout.yaml",
                     "timeouts-step.yaml", "timeouts-workflow.yaml"], ["Failed"]),
    # random exit codes, documented as such: either phase is what Argo does
    **dict.fromkeys(["resubmit.yaml", "retry-backoff.yaml", "retry-container.yaml", "retry-on-error.yaml",
                     "retry-conditional.yaml", "retry-script.yaml", "retry-with-steps.yaml",
                     "workflow-template/retry-with-steps.yaml", "template-defaults.yaml",
                     "custom-metrics.yaml"], ["Succeeded", "Failed"]),
}
# Commands the host lacks, replaced by an equivalent (and long sleeps shortened, to fit CI).
REPLACE: dict[str, list[list[str]]] = {
    "conditionals.yaml": [["cowsay hello", "echo hello"]],
    "suspend-template.yaml": [['duration: "20"', 'duration: "1"']],
    "intermediate-parameters.yaml": [["- /argosay", "- echo"]],  # the argosay image's binary
}
# Workflows that wait on a `suspend: {}` step: the run resumes them (`jobsched workflow resume`),
# supplying these output parameters, as a person would with `argo resume` / `argo node set`.
RESUME: dict[str, dict[str, str]] = {
    "suspend-template.yaml": {},
    "suspend-template-outputs.yaml": {"message": "approved by the corpus run"},
    "intermediate-parameters.yaml": {"approve": "YES"},
}
SLEEPS = {"sleep 10": "sleep 1", "sleep 20": "sleep 1", "sleep 30": "sleep 1", "sleep 50": "sleep 1",
          "sleep 30s": "sleep 1", "time.sleep(10)": "time.sleep(1)"}
KEEP_SLEEPS = {"timeouts-step.yaml", "step-level-timeout.yaml", "dag-task-level-timeout.yaml",
               "timeouts-workflow.yaml"}  # the sleep is what times out


def main() -> None:
    expected_path = D / "EXPECTED.yaml"
    argo = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else {}
    files = sorted(str(p.relative_to(D)) for p in D.rglob("*.yaml") if p.name != "EXPECTED.yaml")
    lib = refs.library_of([d for f in TEMPLATE_FILES for d in documents.parse_all((D / f).read_text())])
    out: dict[str, dict[str, object]] = {}
    for f in files:
        text = (D / f).read_text()
        docs = documents.parse_all(text, f)
        kinds = sorted({str(d.get("kind")) for d in docs})
        e: dict[str, object] = {"argoLint": argo.get(f, _derived_argo_verdict(f, kinds))}
        try:
            documents.lint_all(docs, library=lib)
            e["jobschedLint"] = "pass"
        except LintError as err:
            e["jobschedLint"] = "fail"
            e["jobschedErrors"] = err.errors[:3]
            if e["argoLint"] == "pass" and not all("not supported by jobsched" in x for x in err.errors):
                e["disagree"] = "valid Argo that jobsched's expression parser refuses (expr-lang closures " \
                    "{# ...}, map literals, sprig.date): refused at lint, so it never half-runs"
        replace = list(REPLACE.get(f, []))
        if f not in KEEP_SLEEPS:
            replace += [[a, b] for a, b in SLEEPS.items() if a in text and not any(a in r[0] for r in replace)]
        if kinds != ["Workflow"]:
            e["run"] = None
            e["why"] = f"no Workflow to run here (kinds: {', '.join(kinds)})" if "Workflow" not in kinds else \
                "run through the Workflow files that use these templates"
        elif e["jobschedLint"] == "fail":
            e["run"] = None
            e["why"] = "refused by jobsched lint (see jobschedErrors)"
        elif f in NOT_RUN:
            e["run"] = None
            e["why"] = NOT_RUN[f]
        elif any("data" in t for d in docs if d.get("kind") == "Workflow"
                 for t in (d.get("spec") or {}).get("templates") or []):
            e["run"] = None
            e["why"] = "a data template reads an artifact repository, which jobsched has not: refused at submit"
        elif any("resource" in t for d in docs if d.get("kind") == "Workflow"
                 for t in (d.get("spec") or {}).get("templates") or []):
            e["run"] = None
            e["why"] = ("a resource step acts on Kubernetes objects: refused at submit on the local backend "
                        "(run on the Kubernetes backend, as tests/k8s/test_workflow_resources.py does)")
        elif "command: not set" in " ".join(_warnings(docs, lib)):
            e["run"] = None
            e["why"] = "a step has no command (the image's entrypoint): refused at submit on the local backend"
        else:
            e["run"] = PHASES.get(f, ["Succeeded"])
        if replace and e["run"]:
            e["replace"] = replace
        if f in RESUME and e["run"]:
            e["resume"] = RESUME[f]
        out[f] = e
    expected_path.write_text(yaml.safe_dump({"release": "v3.5.11", "commit":
                                                      "25bbb71cced32b671f9ad35f0ffd1f0ddb8226ee",
                                                      "templateFiles": TEMPLATE_FILES, "files": out},
                                                     sort_keys=False, width=120))


ARGO_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}


def _derived_argo_verdict(f: str, kinds: list[str]) -> str:
    """Without a recorded ``argo lint`` run: Argo's own examples/validation_test.go checks every
    example but three against Argo's JSON schema, and the release ships them as valid examples."""
    if not set(kinds) <= ARGO_KINDS:
        return "n/a"  # ConfigMap, PersistentVolumeClaim, ResourceQuota, WorkflowEventBinding
    if Path(f).name in ("memoize-simple.yaml",):  # skipped by TestValidateExamples
        return "unknown"
    return "pass"


def _warnings(docs: list[dict[str, object]], lib: refs.Library) -> list[str]:
    return [w for item in documents.lint_all(docs, library=lib) for w in item.warnings]  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

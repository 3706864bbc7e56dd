"""Record Argo's own ``argo lint --offline`` verdict for every file of the Argo corpus.

    go mod download github.com/argoproj/argo-workflows/v3@v3.5.11
    cp -r $(go env GOMODCACHE)/github.com/argoproj/argo-workflows/v3@v3.5.11 src && chmod -R u+w src
    (cd src && go build -o /tmp/argo ./cmd/argo)
    python tools/argo_lint_verdicts.py /tmp/argo > tests/workflows/argo_examples/ARGO_LINT_VERDICTS.json
    python tools/argo_corpus_expected.py tests/workflows/argo_examples/ARGO_LINT_VERDICTS.json

Each file is linted with the corpus's template files beside it, one file per template document:
``argo lint --offline`` resolves only the first WorkflowTemplate of a multi-document file
(argoproj/argo-workflows#12137). A file with no Argo kind (ConfigMap, PVC, ...) is ``n/a``: argo
lint skips such kinds and says "no linting errors found".
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

D = Path(__file__).resolve().parents[1] / "tests" / "workflows" / "argo_examples"
TEMPLATE_FILES = ["workflow-template/templates.yaml", "cluster-workflow-template/clustertemplates.yaml",
                  "dag-inline-workflowtemplate.yaml"]
ARGO_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}


def main() -> None:
    argo = sys.argv[1]
    tmp = Path(tempfile.mkdtemp())
    split: dict[str, list[str]] = {}
    for t in TEMPLATE_FILES:
        for i, doc in enumerate(d for d in yaml.safe_load_all((D / t).read_text()) if d):
            p = tmp / f"{t.replace('/', '_')}-{i}.yaml"
            p.write_text(yaml.safe_dump(doc))
            split.setdefault(t, []).append(str(p))
    out: dict[str, str] = {}
    for path in sorted(D.rglob("*.yaml")):
        f = str(path.relative_to(D))
        if f == "EXPECTED.yaml":
            continue
        kinds = {str(d.get("kind")) for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)}
        if not kinds & ARGO_KINDS:
            out[f] = "n/a"
            continue
        refs = [p for t, ps in split.items() if t != f for p in ps]
        r = subprocess.run([argo, "lint", "--offline", "-o", "simple", str(path), *refs],
                           capture_output=True, text=True, timeout=120, cwd=D)
        out[f] = "pass" if r.returncode == 0 else "fail"
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()

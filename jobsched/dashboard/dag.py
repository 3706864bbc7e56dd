"""The layout of a workflow's node graph for an inline SVG: boxes in layers (longest path from the
roots) and the edges between them. The template draws it; everything shown there is autoescaped.

Edges: a DAG task hangs off the tasks it depends on (``dependencies`` or the task names in a
``depends`` expression), or off its DAG when it depends on none; the step groups of a Steps template
follow one another; every other node hangs off its parent.
"""

from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass
from typing import Any

from jobsched.workflows.state import WorkflowState

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 168, 40, 24, 40, 12
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Box:
    name: str
    label: str
    type: str
    phase: str
    x: int
    y: int
    message: str


def _task_deps(manifest: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """{DAG template name: {task: [tasks it depends on]}} from the manifest."""
    out: dict[str, dict[str, list[str]]] = {}
    for tmpl in (manifest.get("spec") or {}).get("templates") or []:
        tasks = ((tmpl or {}).get("dag") or {}).get("tasks") or []
        names = {t.get("name") for t in tasks if isinstance(t, dict)}
        deps: dict[str, list[str]] = {}
        for t in tasks:
            if not isinstance(t, dict):
                continue
            got = list(t.get("dependencies") or [])
            if isinstance(t.get("depends"), str):
                got += [tok for tok in _TOKEN.findall(t["depends"]) if tok in names]
            deps[str(t.get("name"))] = list(dict.fromkeys(d for d in got if d in names))
        out[str(tmpl.get("name"))] = deps
    return out


def edges(st: WorkflowState) -> list[tuple[str, str]]:
    deps_by_template = _task_deps(st.manifest)
    out: list[tuple[str, str]] = []
    for n in st.nodes.values():
        kids = [c for c in n.children if c in st.nodes]
        if n.type == "DAG":
            deps = deps_by_template.get(n.template or "", {})
            for c in kids:
                task = c[len(n.name) + 1:] if c.startswith(n.name + ".") else c
                task = task.split("(")[0]  # a withItems/withParam child: "train(0:0.01)"
                srcs = [f"{n.name}.{d}" for d in deps.get(task, []) if f"{n.name}.{d}" in st.nodes]
                out += [(s, c) for s in srcs] or [(n.name, c)]
        elif n.type == "Steps" and kids:
            out.append((n.name, kids[0]))
            for prev, nxt in zip(kids, kids[1:], strict=False):
                leaves = [g for g in st.nodes[prev].children if g in st.nodes] or [prev]
                out += [(leaf, nxt) for leaf in leaves]
        else:
            out += [(n.name, c) for c in kids]
    return list(dict.fromkeys(out))


def layout(st: WorkflowState) -> dict[str, Any]:
    """Boxes, edges as (x1, y1, x2, y2), and the SVG's width and height."""
    es = edges(st)
    preds: dict[str, list[str]] = {name: [] for name in st.nodes}
    for a, b in es:
        preds[b].append(a)
    try:
        order = list(graphlib.TopologicalSorter(preds).static_order())
    except graphlib.CycleError:  # not expected; fall back to the stored order, parents first
        es = [(str(n.parent), n.name) for n in st.nodes.values() if n.parent in st.nodes]
        preds = {name: [a for a, b in es if b == name] for name in st.nodes}
        order = list(graphlib.TopologicalSorter(preds).static_order())
    level: dict[str, int] = {}
    for name in order:
        level[name] = 1 + max((level.get(p, 0) for p in preds[name]), default=-1)
    rows: dict[int, list[str]] = {}
    for name in order:
        rows.setdefault(level[name], []).append(name)
    width = max((len(r) for r in rows.values()), default=1)
    boxes: dict[str, Box] = {}
    for lv, names in rows.items():
        offset = (width - len(names)) * (BOX_W + GAP_X) // 2
        for i, name in enumerate(names):
            n = st.nodes[name]
            boxes[name] = Box(name=name, label=n.display_name, type=n.type, phase=n.phase,
                              x=PAD + offset + i * (BOX_W + GAP_X), y=PAD + lv * (BOX_H + GAP_Y),
                              message=n.message or "")
    lines = [(boxes[a].x + BOX_W // 2, boxes[a].y + BOX_H, boxes[b].x + BOX_W // 2, boxes[b].y)
             for a, b in es if a in boxes and b in boxes]
    return {"boxes": list(boxes.values()), "edges": lines, "box_w": BOX_W, "box_h": BOX_H,
            "width": 2 * PAD + width * (BOX_W + GAP_X) - GAP_X,
            "height": 2 * PAD + (max(rows, default=0) + 1) * (BOX_H + GAP_Y) - GAP_Y}


def phase_class(phase: str) -> str:
    return "ph-" + re.sub(r"[^a-z]", "", phase.lower())

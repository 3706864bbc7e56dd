"""Steps, recursion ended by ``when``, and loops (withItems, withParam, withSequence) end to end."""

from __future__ import annotations

import json

import pytest

from tests.workflows.conftest import by_display

pytestmark = pytest.mark.slow

COUNTDOWN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: countdown}
spec:
  entrypoint: countdown
  arguments: {parameters: [{name: n, value: "3"}]}
  templates:
  - name: countdown
    inputs: {parameters: [{name: n}]}
    steps:
    - - name: show
        template: emit
        arguments: {parameters: [{name: text, value: "{{inputs.parameters.n}}"}]}
    - - name: again
        template: countdown
        when: "{{steps.show.outputs.result}} > 1"
        arguments: {parameters: [{name: n, value: "{{=asInt(steps.show.outputs.result) - 1}}"}]}
      - name: side
        template: emit
        when: "'{{inputs.parameters.n}}' == '3' && (2 >= 10 || 'a b' != c)"
        arguments: {parameters: [{name: text, value: "side"}]}
  - name: emit
    inputs: {parameters: [{name: text}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.text}}"]}
"""


def test_recursion_through_steps_ends_with_when(wfh):
    st = wfh.run(COUNTDOWN)
    assert st.phase == "Succeeded", st.message
    shows = sorted((n for n in st.nodes.values() if n.display_name == "show"), key=lambda n: n.started_at)
    assert [n.outputs["result"] for n in shows] == ["3", "2", "1"]
    for earlier, later in zip(shows, shows[1:], strict=False):
        assert later.started_at >= earlier.finished_at
    skipped = [n for n in st.nodes.values() if n.phase == "Skipped"]
    # the innermost 'again' (1 > 1 is false) and 'side' in the two inner levels (n != 3)
    assert sorted(n.display_name for n in skipped) == ["again", "side", "side"]
    assert st.nodes["countdown[1].again[1].again[1].again"].message == "when '1 > 1' evaluated false"
    side = st.nodes["countdown[1].side"]
    assert side.phase == "Succeeded" and side.started_at >= shows[0].finished_at


LOOPS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: loops}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: gen
        template: gen
    - - name: scalars
        template: emit
        arguments: {parameters: [{name: text, value: "s-{{item}}"}]}
        withItems: [a, 2, true]
      - name: maps
        template: emit
        arguments: {parameters: [{name: text, value: "{{item.name}}={{item.size}}"}]}
        withItems: [{name: x, size: 1}, {name: y, size: 2}]
      - name: fan
        template: square
        arguments: {parameters: [{name: n, value: "{{item}}"}]}
        withParam: "{{steps.gen.outputs.result}}"
      - name: seq
        template: emit
        arguments: {parameters: [{name: text, value: "{{item}}"}]}
        withSequence: {count: "3", start: "1", format: "w%02d"}
      - name: down
        template: emit
        arguments: {parameters: [{name: text, value: "{{item}}"}]}
        withSequence: {start: "3", end: "1"}
    - - name: total
        template: emit
        arguments: {parameters: [{name: text, value: "{{steps.fan.outputs.result}}|{{steps.fan.outputs.parameters.sq}}"}]}
  - name: gen
    script:
      image: python
      command: [python]
      source: |
        import json
        print(json.dumps([1, 2, 3]))
  - name: square
    inputs: {parameters: [{name: n}]}
    script:
      image: python
      command: [sh]
      source: |
        echo $(( {{inputs.parameters.n}} * {{inputs.parameters.n}} ))
        echo $(( {{inputs.parameters.n}} * {{inputs.parameters.n}} )) > /tmp/sq
    outputs:
      parameters: [{name: sq, valueFrom: {path: /tmp/sq}}]
  - name: emit
    inputs: {parameters: [{name: text}]}
    container: {image: alpine, command: [echo], args: ["{{inputs.parameters.text}}"]}
"""


def _results(st, group: str) -> list[str]:
    g = st.nodes[group]
    return [st.nodes[c].outputs["result"] for c in g.children]


def test_loops_items_maps_param_and_sequence(wfh):
    st = wfh.run(LOOPS)
    assert st.phase == "Succeeded", st.message
    grp = "loops[1]"
    assert _results(st, f"{grp}.scalars") == ["s-a", "s-2", "s-true"]
    assert _results(st, f"{grp}.maps") == ["x=1", "y=2"]
    assert _results(st, f"{grp}.fan") == ["1", "4", "9"]
    assert _results(st, f"{grp}.seq") == ["w01", "w02", "w03"]
    assert _results(st, f"{grp}.down") == ["3", "2", "1"]
    names = [st.nodes[c].display_name for c in st.nodes[f"{grp}.maps"].children]
    assert names == ["maps(0:name:x,size:1)", "maps(1:name:y,size:2)"]
    total = st.nodes["loops[2].total"].outputs["result"]
    results, squares = total.split("|")
    assert json.loads(results) == ["1", "4", "9"] and json.loads(squares) == ["1", "4", "9"]
    # every fan-out child had its own output directory: no collisions on /tmp/sq
    dirs = {st.nodes[c].id for c in st.nodes[f"{grp}.fan"].children}
    assert len(dirs) == 3
    gen = by_display(st)["gen"]
    assert all(st.nodes[c].started_at >= gen.finished_at for c in st.nodes[f"{grp}.fan"].children)


GLOBALS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: globals}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: produce, template: produce}
    - - name: consume
        template: say
        arguments: {parameters: [{name: m, value: "{{workflow.outputs.parameters.version}}"}]}
      - name: bad-enum
        template: choose
        continueOn: {error: true}
        arguments: {parameters: [{name: mode, value: fast}]}
      - name: default-enum
        template: choose
  - name: produce
    script: {image: alpine, command: [sh], source: "echo v42 > /tmp/version"}
    outputs:
      parameters: [{name: version, globalName: version, valueFrom: {path: /tmp/version}}]
  - name: say
    inputs: {parameters: [{name: m}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.m}}"]}
  - name: choose
    inputs: {parameters: [{name: mode, default: safe, enum: [slow, safe]}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.mode}}"]}
"""


def test_global_outputs_and_enums(wfh):
    st = wfh.run(GLOBALS)
    assert st.phase == "Succeeded", st.message
    n = by_display(st)
    assert st.outputs == {"version": "v42"}
    assert n["consume"].outputs["result"] == "v42"
    assert n["bad-enum"].phase == "Error"
    assert n["bad-enum"].message == "inputs.parameters.mode: 'fast' is not one of ['slow', 'safe']"
    assert n["bad-enum"].attempts == []  # nothing ran
    assert n["default-enum"].outputs["result"] == "safe"

"""User YAML is loaded safely and within bounds: plain data only, capped in size, aliases, nesting
and expanded size; every failure one SpecError naming the file."""

from __future__ import annotations

import pytest

from jobsched.spec import yamlsafe
from jobsched.spec.errors import SpecError


def bomb(levels: int = 9) -> str:
    """The "billion laughs": 9 levels of 9 aliases each, 9^9 leaves once expanded."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("data", "why"), [
    (bomb(), "nodes once aliases are expanded"),
    ("a: &a [*a]\n", "a recursive alias"),
    ("a: &a {b: *a}\n", "a recursive alias"),
    ("x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(1001)), "more than 1000 aliases"),
    ("[" * 500 + "]" * 500, "nested more than 100 levels deep"),
    ("a: !!python/object/apply:os.system [echo hi]\n", "could not determine a constructor"),
    ("a: !!python/name:os.system\n", "could not determine a constructor"),
    ("a: !custom 1\n", "could not determine a constructor for the tag '!custom'"),
    ("a: !!binary aGk=\n", "no JSON form"),
    ("!!set {a, b}\n", "no JSON form"),
    (bytes(range(256)), "not UTF-8 text: byte 0x80 at offset 128"),
    (b"a: \x00\n", "character #x0000 is not allowed"),
    ("a: " + "9" * 5000 + "\n", "Exceeds the limit"),
    ("? [1]\n: 2\n", "found unhashable key"),
    ("a" * (yamlsafe.MAX_BYTES + 1), "larger than 4 MiB"),
])
def test_refused_with_the_file_named(data: str | bytes, why: str) -> None:
    with pytest.raises(SpecError) as e:
        yamlsafe.loads(data, "job.yaml")
    assert str(e.value).startswith("job.yaml: not valid YAML (")
    assert why in str(e.value)


def test_a_syntax_error_names_line_and_column() -> None:
    with pytest.raises(SpecError, match=r"^job\.yaml:2:1: malformed YAML: "):
        yamlsafe.loads("a: [1,\n", "job.yaml")


def test_plain_yaml_with_a_few_aliases_and_merge_keys_loads() -> None:
    data, node = yamlsafe.loads("base: &b {cpu: 1}\nx: {<<: *b, memory: 1Gi}\nwhen: 2024-01-02\n", "f")
    assert data == {"base": {"cpu": 1}, "x": {"cpu": 1, "memory": "1Gi"}, "when": "2024-01-02"}
    assert node is not None and node.start_mark.line == 0
    assert yamlsafe.loads("", "f") == (None, None)
    assert [d for d, _ in yamlsafe.loads_all("a: 1\n---\nb: 2\n", "f")] == [{"a": 1}, {"b": 2}]
    with pytest.raises(SpecError, match="expected one YAML document, found 2"):
        yamlsafe.loads("a: 1\n---\nb: 2\n", "f")


def test_a_document_just_under_the_expansion_cap_loads() -> None:
    data, _ = yamlsafe.loads(bomb(5), "f")  # 9^5 = 59,049 leaves
    assert len(data["a4"]) == 9 and data["a4"][0][0][0][0] == ["lol"] * 9


def test_expanded_size_counts_shared_nodes_each_time() -> None:
    import yaml

    node = yaml.compose("a: &x [1, 2]\nb: *x\nc: *x\n")
    assert yamlsafe.expanded_size(node) == 1 + 3 + 3 * 3  # the mapping, 3 keys, 3 lists of 1 + 2


def test_load_file_reads_at_most_the_cap(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "big.yaml"
    p.write_bytes(b"#" * (yamlsafe.MAX_BYTES + 100))
    assert len(yamlsafe.load_file(p)) == yamlsafe.MAX_BYTES + 1
    with pytest.raises(SpecError, match="cannot read"):
        yamlsafe.load_file(p.parent / "missing.yaml")

"""``workflows/pipeline.yaml`` against the Google Cloud Workflows JSON schema (SchemaStore's, as shipped
inside the workflows-emulator package) with ``check-jsonschema``, and against the emulator's known gaps."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "workflows" / "pipeline.yaml"
SCHEMA = resources.files("workflows_emulator") / "workflow-schema.json"
EXPRESSION = re.compile(r"\$\{(.*)\}")


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), str(path)],
                          capture_output=True, text=True, timeout=120)


def test_the_schema_is_the_cloud_workflows_one():
    import json

    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"] == "https://json.schemastore.org/workflows.json"
    assert schema["title"] == "Google Cloud Workflows" and "parallel" in schema["definitions"]


def test_pipeline_validates_against_the_workflows_schema():
    r = check_jsonschema(PIPELINE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok -- validation done" in r.stdout


@pytest.mark.parametrize("old, new, complaint", [
    ("initial_delay: 2", "delay: 2", "delay"),                      # what the emulator reads; not Workflows
    ("type: OIDC", "type: Bearer", "Bearer"),
    ("max_retries: 2", "max_retries: two", "two"),
])
def test_the_check_catches_a_broken_workflow(tmp_path, old, new, complaint):
    broken = tmp_path / "pipeline.yaml"
    broken.write_text(PIPELINE.read_text().replace(old, new, 1))
    r = check_jsonschema(broken)
    assert r.returncode == 1 and complaint in r.stdout + r.stderr


def expressions(node, path=""):
    """(where, expression text) for every ${...} in the YAML."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from expressions(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from expressions(v, f"{path}[{i}]")
    elif isinstance(node, str):
        for m in EXPRESSION.finditer(node):
            yield path, m.group(1)


def calls(node):
    if isinstance(node, dict):
        if "call" in node:
            yield node
        for v in node.values():
            yield from calls(v)
    elif isinstance(node, list):
        for v in node:
            yield from calls(v)


def gaps(doc) -> list[str]:
    """Constructs that Cloud Workflows accepts but the workflows-emulator gets wrong (DESIGN.md)."""
    found = []
    for where, expr in expressions(doc):
        if re.search(r"\b(true|false|null)\b", re.sub(r'"[^"]*"', '""', expr)):
            found.append(f"{where}: lower-case true/false/null inside ${{}}")
        if re.search(r"\bif\(", expr):
            found.append(f"{where}: if()")
        if "}" in expr:
            found.append(f"{where}: '}}' inside an expression")
        if re.search(r"default\(.*,\s*(True|False)\s*\)", expr):
            found.append(f"{where}: default() with a boolean")
    for call in calls(doc):
        if str(call["call"]).startswith("googleapis."):
            found.append(f"connector {call['call']}")
    return found


def test_pipeline_stays_inside_the_emulator_subset():
    doc = yaml.safe_load(PIPELINE.read_text())
    assert gaps(doc) == []
    oidc = [c for c in calls(doc) if (c.get("args") or {}).get("auth")]
    assert oidc and all(c["args"]["auth"] == {"type": "OIDC"} for c in oidc)
    assert len(oidc) == 2  # one POST and one GET, each on the cloud branch of its subworkflow


def test_the_subset_check_can_fail():
    bad = {"main": {"steps": [{"a": {"assign": [{"x": "${default(map.get(args, \"d\"), True)}"},
                                                {"y": "${x == null}"}, {"z": "${if(x, 1, 2)}"}]}},
                              {"b": {"call": "googleapis.firestore.v1.projects.databases.documents.get"}}]}}
    assert len(gaps(bad)) == 4


def test_every_function_call_is_retried_and_caught():
    doc = yaml.safe_load(PIPELINE.read_text())

    def tries(node):
        if isinstance(node, dict):
            if "try" in node:
                yield node
            for v in node.values():
                yield from tries(v)
        elif isinstance(node, list):
            for v in node:
                yield from tries(v)

    steps = list(tries(doc["main"]))
    assert len(steps) == 5  # plan, each next page, each strategy, reconcile, allocation
    assert all("retry" in s and s["retry"]["backoff"]["initial_delay"] > 0 for s in steps)
    assert sum("except" in s for s in steps) == 3  # a failing plan fails the run: nothing can go on without it

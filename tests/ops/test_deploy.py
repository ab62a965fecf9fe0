"""``python main.py deploy``: the gcloud command list, printed (``--print``) and run (against a fake ``gcloud``)."""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT, REGION = "intent-bus-prod", "europe-west1"
BASE = f"https://{REGION}-{PROJECT}.cloudfunctions.net"
SA = {k: f"intent-bus-{k}@{PROJECT}.iam.gserviceaccount.com" for k in ("functions", "workflow", "scheduler")}


def deploy(*args, env=None):
    return subprocess.run([sys.executable, "main.py", "deploy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@functools.lru_cache(maxsize=None)
def printed(*args):
    r = deploy("--print", "--project", PROJECT, "--region", REGION, *args)
    assert r.returncode == 0, r.stderr
    return tuple(shlex.split(line) for line in r.stdout.splitlines() if line.startswith("gcloud ")), r.stdout


def flags(argv):
    return {a.split("=", 1)[0]: (a.split("=", 1)[1] if "=" in a else True) for a in argv if a.startswith("--")}


def find(cmds, *prefix):
    return [c for c in cmds if c[:len(prefix)] == list(prefix)]


def test_functions_are_gen2_http_private_and_run_as_their_account():
    cmds, _ = printed()
    deployed = find(cmds, "gcloud", "functions", "deploy")
    assert [c[3] for c in deployed] == ["orchestrator", "strategy", "reconcile", "allocation", "api"]
    for c in deployed:
        f = flags(c)
        assert f["--gen2"] is True and f["--trigger-http"] is True and f["--no-allow-unauthenticated"] is True
        assert "--allow-unauthenticated" not in f
        assert f["--runtime"] == "python312" and f["--region"] == REGION and f["--entry-point"] == c[3]
        assert f["--service-account"] == SA["functions"] and f["--project"] == PROJECT and f["--source"] == "."
        assert f["--ignore-file"] == "workflows/gcloudignore" and (ROOT / f["--ignore-file"]).is_file()
        env = dict(kv.split("=", 1) for kv in f["--set-env-vars"].split(","))
        assert env == {"GOOGLE_CLOUD_PROJECT": PROJECT, "INTENT_BUS_ORCHESTRATOR": "inline",
                       "INTENT_BUS_WORKFLOW": f"projects/{PROJECT}/locations/{REGION}/workflows/intent-bus-pipeline",
                       "INTENT_BUS_FUNCTIONS_URL": BASE}


def test_only_the_workflow_may_invoke_the_steps_and_named_people_the_orchestrator():
    cmds, _ = printed("--invoker", "user:ana@example.com", "--invoker", "group:desk@example.com",
                      "--reader", "user:audit@example.com")
    bindings = [(c[3], flags(c)["--member"]) for c in find(cmds, "gcloud", "functions", "add-invoker-policy-binding")]
    assert bindings == [(n, f"serviceAccount:{SA['workflow']}") for n in ("strategy", "reconcile", "allocation")] + [
        ("orchestrator", "user:ana@example.com"), ("orchestrator", "group:desk@example.com"),
        ("api", "user:ana@example.com"), ("api", "group:desk@example.com"), ("api", "user:audit@example.com")]
    # Every binding comes after the function exists.
    order = [" ".join(c[:4]) for c in cmds]
    assert order.index("gcloud functions deploy allocation") < order.index(
        "gcloud functions add-invoker-policy-binding strategy")


def test_service_accounts_have_least_privilege_roles():
    cmds, _ = printed()
    created = [c[4] for c in find(cmds, "gcloud", "iam", "service-accounts", "create")]
    assert created == ["intent-bus-functions", "intent-bus-workflow", "intent-bus-scheduler"]
    roles = {(flags(c)["--member"], flags(c)["--role"]) for c in find(cmds, "gcloud", "projects",
                                                                     "add-iam-policy-binding")}
    assert roles == {(f"serviceAccount:{SA['functions']}", "roles/datastore.user"),
                     (f"serviceAccount:{SA['workflow']}", "roles/logging.logWriter"),
                     (f"serviceAccount:{SA['scheduler']}", "roles/workflows.invoker")}
    assert not any("owner" in r or "editor" in r for _, r in roles)
    workflow_mode, _ = printed("--orchestrator-mode", "workflow")
    extra = {flags(c)["--role"] for c in find(workflow_mode, "gcloud", "projects", "add-iam-policy-binding")
             if flags(c)["--member"] == f"serviceAccount:{SA['functions']}"}
    assert extra == {"roles/datastore.user", "roles/workflows.invoker"}


def test_workflow_and_daily_scheduler_job():
    cmds, _ = printed("--time", "22:15", "--time-zone", "America/New_York")
    (wf,) = find(cmds, "gcloud", "workflows", "deploy")
    assert wf[3] == "intent-bus-pipeline" and flags(wf)["--source"] == "workflows/pipeline.yaml"
    assert flags(wf)["--service-account"] == SA["workflow"] and flags(wf)["--location"] == REGION
    (job,) = find(cmds, "gcloud", "scheduler", "jobs", "create", "http")
    f = flags(job)
    assert job[5] == "intent-bus-daily" and f["--schedule"] == "15 22 * * *" and f["--time-zone"] == "America/New_York"
    assert f["--uri"] == (f"https://workflowexecutions.googleapis.com/v1/projects/{PROJECT}/locations/{REGION}"
                          "/workflows/intent-bus-pipeline/executions")
    assert f["--http-method"] == "POST" and f["--oauth-service-account-email"] == SA["scheduler"]
    argument = json.loads(json.loads(f["--message-body"])["argument"])
    assert argument == {"dryRun": False, "trigger": "scheduled", "runReconcile": True,
                        "urls": {n: f"{BASE}/{n}" for n in ("strategy", "reconcile", "allocation")}}
    default, _ = printed()
    assert flags(find(default, "gcloud", "scheduler", "jobs", "create", "http")[0])["--schedule"] == "30 21 * * *"


def test_firestore_database_rules_and_field_settings():
    cmds, text = printed("--apply-config")
    (db,) = find(cmds, "gcloud", "firestore", "databases", "create")
    assert flags(db)["--type"] == "firestore-native"
    assert "firebaserules.googleapis.com/v1/projects/intent-bus-prod/rulesets" in text
    assert "releases/cloud.firestore" in text and "firestore_rules/firestore.rules" in text
    (ttl,) = find(cmds, "gcloud", "firestore", "fields", "ttls", "update")
    assert ttl[5] == "expires_at" and flags(ttl)["--collection-group"] == "locks" and flags(ttl)["--enable-ttl"]
    assert {c[5] for c in find(cmds, "gcloud", "firestore", "indexes", "fields", "update")} == {
        "context", "decision", "orders_placed"}
    assert "# apply config/*.yaml to Firestore of intent-bus-prod" in text
    assert "apply config" not in printed()[1]


@pytest.mark.parametrize("args, message", [
    (["--project", "Bad_Project"], "is not a project id"),
    (["--project", PROJECT, "--region", "mars"], "is not a region"),
    (["--project", PROJECT, "--time", "25:00"], "is not HH:MM"),
    (["--project", PROJECT, "--time-zone", "Mars/Olympus"], "unknown time zone"),
    (["--project", PROJECT, "--invoker", "ana@example.com"], "is not a member"),
    (["--project", PROJECT, "--orchestrator-mode", "cron"], "inline or workflow"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    r = deploy("--print", *args, env={"GOOGLE_CLOUD_PROJECT": ""})
    assert r.returncode == 2 and message in r.stderr and r.stderr.strip().count("\n") == 0 and r.stdout == ""


# Fakes of gcloud and curl (bash: they start in milliseconds). Each call is logged as its arguments
# separated by \x1f and ended by \x1e; curl also logs what it read on stdin.
FAKE_GCLOUD = r"""#!/usr/bin/env bash
printf '%s\x1f' gcloud "$@" >> "$DEPLOY_LOG"; printf '\x1e' >> "$DEPLOY_LOG"
case "$1 $2 $3 $4" in
  "auth print-access-token  ") echo fake-access-token ;;
  "scheduler jobs create http"|"iam service-accounts create "*)
    echo "ERROR: (gcloud) Resource already exists in the project" >&2; exit 1 ;;
esac
"""
FAKE_CURL = r"""#!/usr/bin/env bash
data=""
for a in "$@"; do [ "$a" = "@-" ] && data=$(cat); done
printf '%s\x1f' curl "$@" "$data" >> "$DEPLOY_LOG"; printf '\x1e' >> "$DEPLOY_LOG"
case "$*" in *"-X POST"*/rulesets) echo '{"name": "projects/p/rulesets/r-1"}' ;; esac
"""


def logged(path):
    return [rec.split("\x1f")[:-1] for rec in path.read_text().split("\x1e") if rec]


def test_without_print_it_runs_the_same_commands(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("gcloud", FAKE_GCLOUD), ("curl", FAKE_CURL)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    log = tmp_path / "calls.jsonl"
    args = ["--project", PROJECT, "--region", REGION]
    r = deploy(*args, env={"PATH": f"{bindir}:{os.environ['PATH']}", "DEPLOY_LOG": str(log)})
    assert r.returncode == 0, r.stderr
    calls = logged(log)
    ran = [c for c in calls if c[0] == "gcloud" and c[1:3] != ["auth", "print-access-token"]]
    expected, _ = printed()
    want = []
    for c in expected:  # the job existed: it was updated, right after its create
        want.append(list(c))
        if list(c[:5]) == ["gcloud", "scheduler", "jobs", "create", "http"]:
            want.append(list(c[:3]) + ["update"] + list(c[4:]))
    assert ran == want
    curls = [c for c in calls if c[0] == "curl"]
    ruleset = json.loads(curls[0][-1])["source"]["files"][0]
    assert ruleset["name"] == "firestore.rules"
    assert ruleset["content"] == (ROOT / "firestore_rules" / "firestore.rules").read_text()
    assert "Authorization: Bearer fake-access-token" in curls[0]
    assert any('"rulesetName": "projects/p/rulesets/r-1"' in " ".join(c) for c in curls[1:])
    assert "(already there)" in r.stderr


def test_log_based_metric_and_alert_policy_on_failed_or_skipped_executions():
    import yaml

    cmds, _ = printed()
    (metric,) = find(cmds, "gcloud", "logging", "metrics", "create")
    assert metric[4] == "intent-bus-executions"
    spec = yaml.safe_load((ROOT / flags(metric)["--config-from-file"]).read_text())
    assert spec["filter"] == 'jsonPayload.data.metric="intent_bus_executions_total"'
    assert spec["labelExtractors"]["status"] == "EXTRACT(jsonPayload.data.labels.status)"
    (policy,) = find(cmds, "gcloud", "alpha", "monitoring", "policies", "create")
    doc = yaml.safe_load((ROOT / flags(policy)["--policy-from-file"]).read_text())
    cond = doc["conditions"][0]["conditionThreshold"]
    assert 'metric.type="logging.googleapis.com/user/intent-bus-executions"' in cond["filter"]
    assert 'metric.label.status="failed"' in cond["filter"] and 'metric.label.status="skipped"' in cond["filter"]
    # The metric's filter matches the line bus.telemetry writes for an execution.
    from bus import telemetry

    assert telemetry.EXECUTIONS._name == "intent_bus_executions"

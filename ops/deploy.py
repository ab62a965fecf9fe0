"""The deploy plan (``python main.py deploy``): put the pipeline on a Google Cloud project, with ``gcloud``.

``--print`` only shows the commands; without it each is printed, then run, in order,
stopping at the first failure (a resource that already exists is not one). What it sets up:

1. the APIs;
2. three service accounts with least privilege:
   ``intent-bus-functions`` (the functions' identity: ``roles/datastore.user``, plus
   ``roles/workflows.invoker`` when ``POST /orchestrator`` starts the workflow),
   ``intent-bus-workflow`` (``roles/logging.logWriter``, and ``roles/run.invoker`` on the
   three step functions only), ``intent-bus-scheduler`` (``roles/workflows.invoker``);
3. Firestore: the database, the security rules (``firestore_rules/firestore.rules``,
   through the Firebase Rules API: gcloud has no command for it), a TTL on
   ``locks.expires_at`` (expired leases are deleted), and single-field index exemptions
   for the large maps of ``executions`` (no query reads them; each indexed leaf costs a
   write and counts toward Firestore's 40,000 index entries per document). No composite
   index is needed: every read is by path or a whole collection;
4. the five functions (gen2, HTTP, ``--no-allow-unauthenticated``), then who may invoke
   them: the workflow's account on ``strategy``/``reconcile``/``allocation``, the people
   given with ``--invoker`` on ``orchestrator`` and ``api``, and those given with ``--reader``
   (auditors) on ``api`` only;
5. the workflow (``workflows/pipeline.yaml``) running as ``intent-bus-workflow``;
6. the Cloud Scheduler job (``workflows/scheduler.yaml``);
7. a log-based metric ``intent-bus-executions`` (``workflows/monitoring/executions_metric.yaml``: the
   ``metric intent_bus_executions_total`` log line of :mod:`bus.telemetry`, labelled by status) and a
   Cloud Monitoring alert policy on failed or skipped executions (``workflows/monitoring/alert_policy.yaml``);
8. with ``--apply-config``, ``config/*.yaml`` written to Firestore (first deploy).

Authentication: functions accept only Google-signed OIDC tokens of principals with
``roles/run.invoker`` (Cloud Run checks them before our code runs). The workflow calls
them with ``auth: {type: OIDC}``. The scheduler calls the Workflow Executions API, a
Google API, which takes an OAuth access token, so its job uses
``--oauth-service-account-email`` (an OIDC token is for calling your own services).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus.constants import FUNCTION_TARGETS as TARGETS
from bus.constants import STEP_FUNCTIONS
from ops.server import ROOT

SCHEDULER_YAML = ROOT / "workflows" / "scheduler.yaml"
PIPELINE_YAML = "workflows/pipeline.yaml"
IGNORE_FILE = "workflows/gcloudignore"
RULES_FILE = "firestore_rules/firestore.rules"
EXECUTIONS_METRIC = "workflows/monitoring/executions_metric.yaml"
ALERT_POLICY = "workflows/monitoring/alert_policy.yaml"
APIS = ("cloudfunctions.googleapis.com", "run.googleapis.com", "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com", "workflows.googleapis.com", "workflowexecutions.googleapis.com",
        "cloudscheduler.googleapis.com", "firestore.googleapis.com", "firebaserules.googleapis.com",
        "logging.googleapis.com", "iam.googleapis.com")
#: Large maps of executions/{id} that no query filters on.
UNINDEXED_EXECUTION_FIELDS = ("context", "decision", "orders_placed")
ACCOUNTS = {"functions": "intent-bus-functions", "workflow": "intent-bus-workflow",
            "scheduler": "intent-bus-scheduler"}


class ScheduleFile(BaseModel):
    """``workflows/scheduler.yaml``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,500}$")
    description: str = ""
    schedule: str
    time_zone: str
    attempt_deadline: str = Field("180s", pattern=r"^\d+s$")
    max_retry_attempts: int = Field(0, ge=0, le=5)
    argument: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"{v!r} is not a 5-field unix-cron schedule")
        return v

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name, e.g. Etc/UTC, America/New_York)") from None
        return v

    @field_validator("argument")
    @classmethod
    def _argument(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "dryRun" in v and not isinstance(v["dryRun"], bool):
            raise ValueError("argument.dryRun must be true or false")
        if "urls" in v:
            raise ValueError("argument.urls is added by deploy")
        return v


def load_schedule(path: Path = SCHEDULER_YAML, time: str | None = None, time_zone: str | None = None) -> ScheduleFile:
    """The job definition, with ``time`` (``HH:MM``, daily) and ``time_zone`` overriding the file.

    Raises:
        ValueError: the file or an override is invalid, naming the field.
    """
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if time is not None:
        m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", time)
        if not m:
            raise ValueError(f"--time {time!r} is not HH:MM")
        raw["schedule"] = f"{int(m[2])} {int(m[1])} * * *"
    if time_zone is not None:
        raw["time_zone"] = time_zone
    try:
        return ScheduleFile.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ValueError(f"{path}: {'.'.join(str(x) for x in e['loc'])}: {e['msg']}") from None


@dataclass
class Step:
    """One deploy step: a command (``argv``), a bash ``script``, or a Python ``action``.

    ``exists_ok``: stderr fragments meaning the resource is already there (not a failure);
    ``then``: the command to run in that case instead (an update).
    """

    title: str
    argv: list[str] | None = None
    script: str | None = None
    action: Callable[[], None] | None = None
    shown: str | None = None
    exists_ok: tuple[str, ...] = ()
    then: list[str] | None = None

    def text(self) -> str:
        """How ``--print`` shows it: a shell command, a script, or a comment."""
        if self.argv is not None:
            return shlex.join(self.argv)
        if self.script is not None:
            return self.script
        return f"# {self.shown or self.title}"


#: How POST /orchestrator runs the pipeline: ``inline`` (the steps in the request) or ``workflow`` (starts it).
OrchestratorMode = Literal["inline", "workflow"]


@dataclass
class DeployConfig:
    """Everything the plan depends on."""

    project: str
    region: str
    runtime: str = "python312"
    firestore_location: str = "nam5"
    workflow: str = "intent-bus-pipeline"
    orchestrator_mode: OrchestratorMode = "inline"
    invokers: list[str] = field(default_factory=list)
    schedule: ScheduleFile | None = None
    apply_config: bool = False
    memory: str = "1Gi"
    timeout: str = "540s"
    notification_channels: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=list)  # may call the read API only (auditors)

    def account(self, role: str) -> str:
        """The e-mail of the service account of ``role`` (functions, workflow, scheduler)."""
        return f"{ACCOUNTS[role]}@{self.project}.iam.gserviceaccount.com"

    @property
    def functions_url(self) -> str:
        """The functions' base URL (gen2 functions answer on it too)."""
        return f"https://{self.region}-{self.project}.cloudfunctions.net"

    @property
    def workflow_name(self) -> str:
        """The workflow's full resource name."""
        return f"projects/{self.project}/locations/{self.region}/workflows/{self.workflow}"

    def urls(self) -> dict[str, str]:
        """The step functions' URLs, as the workflow's argument carries them."""
        return {name: f"{self.functions_url}/{name}" for name in STEP_FUNCTIONS}


def _rules_script(project: str) -> str:
    api = f"https://firebaserules.googleapis.com/v1/projects/{project}"
    release = f"projects/{project}/releases/cloud.firestore"
    payload = ("python3 -c 'import json,sys; print(json.dumps({\"source\": {\"files\": [{\"name\": "
               "\"firestore.rules\", \"content\": open(sys.argv[1]).read()}]}}))' " + RULES_FILE)
    hdr = f'-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -H "X-Goog-User-Project: {project}"'
    return "\n".join([
        "# Firestore security rules (Firebase Rules API): create a ruleset, then point cloud.firestore at it",
        "TOKEN=$(gcloud auth print-access-token)",
        f"RULESET=$({payload} | curl -sSf -X POST {hdr} --data-binary @- {api}/rulesets "
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"name\"])')",
        f"curl -sSf -X PATCH {hdr} {api}/releases/cloud.firestore "
        f"-d '{{\"release\": {{\"name\": \"{release}\", \"rulesetName\": \"'\"$RULESET\"'\"}}}}' >/dev/null "
        f"|| curl -sSf -X POST {hdr} {api}/releases "
        f"-d '{{\"name\": \"{release}\", \"rulesetName\": \"'\"$RULESET\"'\"}}' >/dev/null",
        'echo "rules released: $RULESET"',
    ])


def _apply_config(project: str) -> Callable[[], None]:
    def run() -> None:
        import os

        from bus.store import FirestoreStore
        from pipeline.settings import apply_settings, load_settings

        if os.environ.get("FIRESTORE_EMULATOR_HOST"):
            raise RuntimeError("FIRESTORE_EMULATOR_HOST is set: unset it to write the real project's Firestore")
        apply_settings(FirestoreStore(project), load_settings())

    return run


def plan(cfg: DeployConfig) -> list[Step]:
    """The ordered steps of a deployment (nothing runs here)."""
    p, r = cfg.project, cfg.region
    proj = f"--project={p}"
    steps = [Step("enable the APIs", ["gcloud", "services", "enable", *APIS, proj])]
    for role, name in ACCOUNTS.items():
        steps.append(Step(f"service account {name}",
                          ["gcloud", "iam", "service-accounts", "create", name,
                           f"--display-name=Intent Bus {role}", proj], exists_ok=("already exists",)))
    roles = [("functions", "roles/datastore.user"), ("workflow", "roles/logging.logWriter"),
             ("scheduler", "roles/workflows.invoker")]
    if cfg.orchestrator_mode == "workflow":
        roles.append(("functions", "roles/workflows.invoker"))
    for who, role in roles:
        steps.append(Step(f"{role} for {ACCOUNTS[who]}",
                          ["gcloud", "projects", "add-iam-policy-binding", p,
                           f"--member=serviceAccount:{cfg.account(who)}", f"--role={role}", "--condition=None",
                           "--quiet"]))
    steps.append(Step("the Firestore database",
                      ["gcloud", "firestore", "databases", "create", f"--location={cfg.firestore_location}",
                       "--type=firestore-native", proj], exists_ok=("already exists",)))
    steps.append(Step("Firestore security rules", script=_rules_script(p)))
    steps.append(Step("TTL on locks.expires_at",
                      ["gcloud", "firestore", "fields", "ttls", "update", "expires_at", "--collection-group=locks",
                       "--enable-ttl", "--async", proj]))
    for f in UNINDEXED_EXECUTION_FIELDS:
        steps.append(Step(f"no single-field index on executions.{f}",
                          ["gcloud", "firestore", "indexes", "fields", "update", f, "--collection-group=executions",
                           "--disable-indexes", "--async", proj]))
    env = ",".join([f"GOOGLE_CLOUD_PROJECT={p}", f"INTENT_BUS_ORCHESTRATOR={cfg.orchestrator_mode}",
                    f"INTENT_BUS_WORKFLOW={cfg.workflow_name}", f"INTENT_BUS_FUNCTIONS_URL={cfg.functions_url}"])
    for name in TARGETS:
        steps.append(Step(f"function {name}",
                          ["gcloud", "functions", "deploy", name, "--gen2", f"--runtime={cfg.runtime}",
                           f"--region={r}", "--source=.", f"--entry-point={name}", "--trigger-http",
                           "--no-allow-unauthenticated", f"--service-account={cfg.account('functions')}",
                           f"--memory={cfg.memory}", f"--timeout={cfg.timeout}", f"--ignore-file={IGNORE_FILE}",
                           f"--set-env-vars={env}", proj]))
    for name in STEP_FUNCTIONS:
        steps.append(Step(f"the workflow may invoke {name}",
                          ["gcloud", "functions", "add-invoker-policy-binding", name, f"--region={r}",
                           f"--member=serviceAccount:{cfg.account('workflow')}", proj]))
    for member in cfg.invokers:
        steps.append(Step(f"{member} may invoke orchestrator",
                          ["gcloud", "functions", "add-invoker-policy-binding", "orchestrator", f"--region={r}",
                           f"--member={member}", proj]))
    for member in [*cfg.invokers, *cfg.readers]:
        steps.append(Step(f"{member} may read the api",
                          ["gcloud", "functions", "add-invoker-policy-binding", "api", f"--region={r}",
                           f"--member={member}", proj]))
    steps.append(Step("the workflow",
                      ["gcloud", "workflows", "deploy", cfg.workflow, f"--location={r}", f"--source={PIPELINE_YAML}",
                       f"--service-account={cfg.account('workflow')}", proj]))
    sch = cfg.schedule or load_schedule()
    body = json.dumps({"argument": json.dumps({**sch.argument, "urls": cfg.urls()}, separators=(",", ":"))},
                      separators=(",", ":"))
    job = [f"--location={r}", f"--schedule={sch.schedule}", f"--time-zone={sch.time_zone}",
           f"--uri=https://workflowexecutions.googleapis.com/v1/{cfg.workflow_name}/executions",
           "--http-method=POST", f"--message-body={body}", f"--description={sch.description}",
           f"--attempt-deadline={sch.attempt_deadline}", f"--max-retry-attempts={sch.max_retry_attempts}",
           f"--oauth-service-account-email={cfg.account('scheduler')}",
           "--oauth-token-scope=https://www.googleapis.com/auth/cloud-platform", proj]
    steps.append(Step(f"the scheduler job {sch.name}",
                      ["gcloud", "scheduler", "jobs", "create", "http", sch.name, *job], exists_ok=("already exists",),
                      then=["gcloud", "scheduler", "jobs", "update", "http", sch.name, *job]))
    steps.append(Step("log-based metric intent-bus-executions",
                      ["gcloud", "logging", "metrics", "create", "intent-bus-executions",
                       f"--config-from-file={EXECUTIONS_METRIC}", proj], exists_ok=("already exists",),
                      then=["gcloud", "logging", "metrics", "update", "intent-bus-executions",
                            f"--config-from-file={EXECUTIONS_METRIC}", proj]))
    steps.append(Step("alert policy on failed or skipped executions",
                      ["gcloud", "alpha", "monitoring", "policies", "create", f"--policy-from-file={ALERT_POLICY}",
                       *([f"--notification-channels={','.join(cfg.notification_channels)}"]
                         if cfg.notification_channels else []), proj]))
    if cfg.apply_config:
        steps.append(Step("configuration", action=_apply_config(p),
                          shown=f"apply config/*.yaml to Firestore of {p}: config/trading and strategies/{{id}}"))
    return steps


def execute(step: Step, cwd: Path = ROOT, log: Callable[[str], None] = print) -> None:
    """Run one step (from ``cwd``); ``log`` gets progress lines.

    Raises:
        RuntimeError: it failed, with the end of its stderr.
    """
    if step.action is not None:
        step.action()
        return
    cmd = step.argv if step.argv is not None else ["bash", "-euo", "pipefail", "-c", step.script or ""]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode == 0:
        return
    if step.exists_ok and any(s in res.stderr for s in step.exists_ok):
        log("  (already there)")
        if step.then:
            log(f"$ {shlex.join(step.then)}")
            again = subprocess.run(step.then, cwd=cwd, capture_output=True, text=True, check=False)
            if again.returncode != 0:
                raise RuntimeError(f"{step.title} (update) failed: {again.stderr.strip()[-1500:]}")
        return
    raise RuntimeError(f"{step.title} failed (exit {res.returncode}): {res.stderr.strip()[-1500:]}")

"""``python main.py deploy``: the plan of :mod:`ops.deploy`, printed (``--print``) or run with ``gcloud``."""

from __future__ import annotations

import re
import shutil
from typing import Annotated, Optional

import typer

from cli.app import EXIT_FAILED, app, fail
from ops.deploy import SCHEDULER_YAML, DeployConfig, OrchestratorMode, execute, load_schedule, plan

#: The ``--orchestrator-mode`` values, as the deploy plan types them.
ORCHESTRATOR_MODES: dict[str, OrchestratorMode] = {"inline": "inline", "workflow": "workflow"}


@app.command()
def deploy(
    print_only: Annotated[bool, typer.Option("--print", help="only print the commands")] = False,
    project: Annotated[Optional[str], typer.Option("--project", envvar="GOOGLE_CLOUD_PROJECT",
                                                   help="project id")] = None,
    region: Annotated[str, typer.Option("--region", help="region of the functions, workflow and job")] = "us-central1",
    runtime: Annotated[str, typer.Option("--runtime", help="Cloud Functions runtime")] = "python312",
    firestore_location: Annotated[str, typer.Option("--firestore-location",
                                                    help="Firestore location (first deploy)")] = "nam5",
    workflow: Annotated[str, typer.Option("--workflow", help="workflow name")] = "intent-bus-pipeline",
    time: Annotated[Optional[str], typer.Option(
        "--time", help="daily run time HH:MM (default: scheduler.yaml)")] = None,
    time_zone: Annotated[Optional[str], typer.Option("--time-zone", help="IANA time zone of --time")] = None,
    invoker: Annotated[Optional[list[str]], typer.Option(
        "--invoker", help="member allowed to call orchestrator, e.g. user:ana@example.com")] = None,
    orchestrator_mode: Annotated[str, typer.Option(
        "--orchestrator-mode", help="inline: POST /orchestrator runs the steps; workflow: starts it")] = "inline",
    apply_config: Annotated[bool, typer.Option("--apply-config", help="write config/*.yaml to Firestore")] = False,
    reader: Annotated[Optional[list[str]], typer.Option(
        "--reader", help="member allowed to call the read API only (an auditor), e.g. user:audit@example.com")] = None,
    notification_channel: Annotated[Optional[list[str]], typer.Option(
        "--notification-channel", help="Cloud Monitoring channel of the alert policy: "
        "projects/P/notificationChannels/ID (repeatable)")] = None,
) -> None:
    """Deploy functions, workflow, scheduler job, Firestore rules and service accounts with gcloud."""
    if not project or not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", project):
        fail(f"--project {project!r} is not a project id (or set GOOGLE_CLOUD_PROJECT)")
    if not re.fullmatch(r"[a-z]+-[a-z]+[0-9]+", region):
        fail(f"--region {region!r} is not a region, e.g. us-central1")
    mode = ORCHESTRATOR_MODES.get(orchestrator_mode)
    if mode is None:
        fail("--orchestrator-mode must be inline or workflow")
    bad = [m for m in [*(invoker or []), *(reader or [])]
           if not re.fullmatch(r"(user|group|serviceAccount|domain):\S+", m)]
    if bad:
        fail(f"--invoker {bad[0]!r} is not a member (user:EMAIL, group:EMAIL, serviceAccount:EMAIL, domain:DOMAIN)")
    bad = [c for c in notification_channel or [] if not re.fullmatch(r"projects/[^/]+/notificationChannels/\S+", c)]
    if bad:
        fail(f"--notification-channel {bad[0]!r} is not projects/PROJECT/notificationChannels/ID")
    try:
        schedule = load_schedule(SCHEDULER_YAML, time, time_zone)
    except ValueError as exc:
        fail(str(exc))
    cfg = DeployConfig(project, region, runtime=runtime, firestore_location=firestore_location, workflow=workflow,
                       orchestrator_mode=mode, invokers=list(invoker or []),
                       schedule=schedule, apply_config=apply_config,
                       notification_channels=list(notification_channel or []), readers=list(reader or []))
    steps = plan(cfg)
    if print_only:
        typer.echo(f"# Intent Bus deployment to project {project}, region {region} ({len(steps)} steps)")
        for s in steps:
            typer.echo(s.text())
        return
    if shutil.which("gcloud") is None:
        fail("gcloud is not installed (https://cloud.google.com/sdk); `--print` shows the commands")
    for i, s in enumerate(steps, 1):
        typer.echo(f"[{i}/{len(steps)}] {s.title}", err=True)
        typer.echo(s.text(), err=True)
        try:
            execute(s, log=lambda m: typer.echo(m, err=True))
        except Exception as exc:  # stop at the first failed step, say which
            fail(str(exc), EXIT_FAILED)
    typer.echo(f"deployed: POST {cfg.functions_url}/orchestrator (with an identity token), "
               f"workflow {cfg.workflow_name}, job {schedule.name}", err=True)

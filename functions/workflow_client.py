"""Starting the deployed workflow from ``POST /orchestrator`` (``$INTENT_BUS_ORCHESTRATOR=workflow``).

Configuration (environment, set by ``python main.py deploy``):

* ``INTENT_BUS_ORCHESTRATOR``: ``inline`` (default: run the steps in the
  function) or ``workflow`` (start an execution of the workflow and return its name).
* ``INTENT_BUS_WORKFLOW``: ``projects/{p}/locations/{region}/workflows/{name}``.
* ``INTENT_BUS_FUNCTIONS_URL``: the functions' base URL
  (``https://{region}-{project}.cloudfunctions.net``); the workflow calls
  ``{base}/strategy``, ``{base}/reconcile`` and ``{base}/allocation``.
* ``INTENT_BUS_WORKFLOWS_ENDPOINT``: tests only, a plaintext gRPC ``host:port``
  that stands in for ``workflowexecutions.googleapis.com``.

The Executions API speaks gRPC through ``google-cloud-workflows`` (imported
on first use: it costs half a second). The workflow's argument is the request
body plus the function URLs, as JSON.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from bus.constants import FUNCTIONS_URL_ENV, STEP_FUNCTIONS, WORKFLOW_ENV
from bus.constants import ORCHESTRATOR_MODE_ENV as MODE_ENV
from bus.constants import WORKFLOWS_ENDPOINT_ENV as ENDPOINT_ENV


class WorkflowConfigError(RuntimeError):
    """The workflow mode is asked for but not configured (a 500: a deployment mistake)."""


class WorkflowStarter(Protocol):
    """Starts one execution of a workflow."""

    def start(self, workflow: str, argument: dict[str, Any]) -> str:
        """Start ``workflow`` (its full resource name) with ``argument``; return the execution's name."""


class ExecutionsApiStarter:
    """:class:`WorkflowStarter` on the Workflow Executions API (``ExecutionsClient.create_execution``).

    Args:
        client: an ``executions_v1.ExecutionsClient``; default one with the
            environment's credentials, or a plaintext channel to
            ``$INTENT_BUS_WORKFLOWS_ENDPOINT`` when that is set.
    """

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    def client(self) -> Any:
        """The Executions client, created on first use."""
        if self._client is None:
            from google.cloud.workflows import executions_v1

            endpoint = os.environ.get(ENDPOINT_ENV)
            if endpoint:
                import grpc
                from google.auth.credentials import AnonymousCredentials
                from google.cloud.workflows.executions_v1.services.executions.transports import ExecutionsGrpcTransport

                transport = ExecutionsGrpcTransport(channel=grpc.insecure_channel(endpoint),
                                                    credentials=AnonymousCredentials())
                self._client = executions_v1.ExecutionsClient(transport=transport)
            else:
                self._client = executions_v1.ExecutionsClient()
        return self._client

    def start(self, workflow: str, argument: dict[str, Any]) -> str:
        """Create an execution of ``workflow`` with ``argument`` serialized as JSON.

        Raises:
            google.api_core.exceptions.GoogleAPICallError: the API refused.
        """
        from google.cloud.workflows.executions_v1 import Execution

        created = self.client().create_execution(parent=workflow, execution=Execution(argument=json.dumps(argument)))
        return str(created.name)


def mode() -> str:
    """``inline`` or ``workflow``.

    Raises:
        WorkflowConfigError: any other value.
    """
    value = (os.environ.get(MODE_ENV) or "inline").strip().lower()
    if value not in ("inline", "workflow"):
        raise WorkflowConfigError(f"{MODE_ENV}={value!r}: expected 'inline' or 'workflow'")
    return value


def workflow_name() -> str:
    """The workflow's full resource name.

    Raises:
        WorkflowConfigError: unset or malformed.
    """
    name = os.environ.get(WORKFLOW_ENV, "")
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "workflows":
        raise WorkflowConfigError(f"{WORKFLOW_ENV} must be projects/P/locations/R/workflows/NAME, got {name!r}")
    return name


def function_urls() -> dict[str, str]:
    """``{"strategy": url, "reconcile": url, "allocation": url}`` from the base URL.

    Raises:
        WorkflowConfigError: the base URL is unset.
    """
    base = os.environ.get(FUNCTIONS_URL_ENV, "").rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise WorkflowConfigError(f"{FUNCTIONS_URL_ENV} must be the functions' base URL, got {base!r}")
    return {name: f"{base}/{name}" for name in STEP_FUNCTIONS}


def workflow_argument(body: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
    """The workflow's argument: the request body without nulls, plus the function URLs."""
    return {**{k: v for k, v in body.items() if v is not None}, "urls": urls}


_starters: dict[str, WorkflowStarter] = {}


def starter() -> WorkflowStarter:
    """The process's starter: one client per endpoint, created on first use."""
    endpoint = os.environ.get(ENDPOINT_ENV, "")
    if endpoint not in _starters:
        _starters[endpoint] = ExecutionsApiStarter()
    return _starters[endpoint]

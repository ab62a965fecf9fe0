"""``POST /orchestrator`` in workflow mode starts the deployed workflow through the real
``google-cloud-workflows`` client. The client speaks only gRPC (the workflows emulator speaks
REST), so its boundary is tested against a hand-written fake of the Executions service on loopback."""

from __future__ import annotations

import json
from concurrent import futures

import grpc
import pytest
from google.cloud.workflows.executions_v1.types import executions as types

from functions import workflow_client
from tests.support.functions import client, documents

WORKFLOW = "projects/p-test/locations/europe-west1/workflows/intent-bus-pipeline"
SERVICE = "google.cloud.workflows.executions.v1.Executions"


class FakeExecutions:
    """The Executions service's CreateExecution, recording each request; ``refuse`` answers PERMISSION_DENIED."""

    def __init__(self) -> None:
        self.requests: list[types.CreateExecutionRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.refuse = False

    def create(self, request: types.CreateExecutionRequest, context: grpc.ServicerContext) -> types.Execution:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        if self.refuse:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "workflows.executions.create denied")
        return types.Execution(name=f"{request.parent}/executions/exec-{len(self.requests)}",
                               argument=request.execution.argument, state=types.Execution.State.ACTIVE)


@pytest.fixture
def executions(monkeypatch):
    fake = FakeExecutions()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(SERVICE, {"CreateExecution": grpc.unary_unary_rpc_method_handler(
        fake.create, request_deserializer=types.CreateExecutionRequest.deserialize,
        response_serializer=types.Execution.serialize)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv(workflow_client.ENDPOINT_ENV, f"127.0.0.1:{port}")
    yield fake
    server.stop(grace=None)


@pytest.fixture
def workflow_mode(monkeypatch):
    monkeypatch.setenv(workflow_client.MODE_ENV, "workflow")
    monkeypatch.setenv(workflow_client.WORKFLOW_ENV, WORKFLOW)
    monkeypatch.setenv(workflow_client.FUNCTIONS_URL_ENV, "https://europe-west1-p-test.cloudfunctions.net")


def test_the_client_sends_the_argument_as_json(executions):
    name = workflow_client.ExecutionsApiStarter().start(WORKFLOW, {"dryRun": True, "urls": {"strategy": "u"}})
    assert name == f"{WORKFLOW}/executions/exec-1"
    req = executions.requests[0]
    assert req.parent == WORKFLOW and json.loads(req.execution.argument) == {"dryRun": True, "urls": {"strategy": "u"}}
    assert executions.metadata[0]["x-goog-request-params"] == f"parent={WORKFLOW}"  # the routing header


def test_orchestrator_starts_the_workflow_and_writes_nothing(cloud, project, executions, workflow_mode):
    before = documents(project)
    resp = client("orchestrator").post("/", json={"dryRun": False, "strategies": ["spy_macd_vixy"],
                                                  "asOf": "2020-03-16"})
    assert resp.status_code == 202, resp.get_json()
    doc = resp.get_json()
    assert doc["workflow_execution"] == f"{WORKFLOW}/executions/exec-1" and doc["workflow"] == WORKFLOW
    sent = json.loads(executions.requests[0].execution.argument)
    assert sent == {"dryRun": False, "runReconcile": True, "asOf": "2020-03-16", "strategies": ["spy_macd_vixy"],
                    "trigger": "manual", "urls": {
                        "strategy": "https://europe-west1-p-test.cloudfunctions.net/strategy",
                        "reconcile": "https://europe-west1-p-test.cloudfunctions.net/reconcile",
                        "allocation": "https://europe-west1-p-test.cloudfunctions.net/allocation"}}
    assert documents(project) == before  # the workflow's steps write, not this call


def test_bad_input_is_refused_before_the_workflow_starts(cloud, project, executions, workflow_mode):
    assert client("orchestrator").post("/", json={"strategies": ["nope"]}).status_code == 404
    assert client("orchestrator").post("/", json={"dryRun": "no"}).status_code == 400
    assert executions.requests == []


def test_a_refused_start_is_500_with_error_id(cloud, project, executions, workflow_mode, capsys):
    executions.refuse = True
    resp = client("orchestrator").post("/", json={"dryRun": True})
    assert resp.status_code == 500 and len(executions.requests) == 1
    err = resp.get_json()["error"]
    assert "PermissionDenied" in err["message"] and err["error_id"] in capsys.readouterr().out


@pytest.mark.parametrize("env, value, message", [
    (workflow_client.MODE_ENV, "sometimes", "expected 'inline' or 'workflow'"),
    (workflow_client.WORKFLOW_ENV, "intent-bus-pipeline", "must be projects/P/locations/R/workflows/NAME"),
    (workflow_client.FUNCTIONS_URL_ENV, "", "must be the functions' base URL"),
])
def test_a_misconfigured_workflow_mode_says_what_is_wrong(cloud, project, executions, workflow_mode, monkeypatch,
                                                          env, value, message):
    monkeypatch.setenv(env, value)
    resp = client("orchestrator").post("/", json={"dryRun": True})
    assert resp.status_code == 500 and message in resp.get_json()["error"]["message"]
    assert executions.requests == []

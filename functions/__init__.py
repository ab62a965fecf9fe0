"""The HTTP face: one handler per Cloud Function (``handlers``), request bodies (``bodies``),
auth, errors, the shared plumbing (``http``), the runtime wiring (``context``) and the
workflow-start client (``workflow_client``). No state and no trading logic."""

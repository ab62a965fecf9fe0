"""The pipeline (strategies -> reconcile -> Commander), its per-step wrappers, wiring and settings."""

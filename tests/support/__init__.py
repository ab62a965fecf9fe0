"""Shared test helpers: settings, clients, builders (no tests here)."""

"""commander."""

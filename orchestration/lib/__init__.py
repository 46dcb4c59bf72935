"""Helpers every integration of the code location shares: the catalog resource, run tags."""

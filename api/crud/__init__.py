"""Keyword-only catalog operations used by the routes (parameterised SQL only)."""

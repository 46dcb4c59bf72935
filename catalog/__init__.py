"""The control plane: settings, catalog tables, field types and the rule validator."""

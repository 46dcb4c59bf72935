"""The rule language: pipeline field types and the checks a fraud rule passes before it runs.

``validator.validate_rule`` is the entry point (the API calls it on every create or edit);
``field_types`` holds the schema types both the API and the streaming engine use.
"""

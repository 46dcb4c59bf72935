"""Whether a checked rule is a condition (true/false), and how to tell the user it is not."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from catalog.rules.field_types import FieldType
from catalog.rules.functions import BOOLEAN_ANONYMOUS_FUNCTIONS, BOOLEAN_FUNCTION_CLASSES
from catalog.rules.problems import clip

_CONDITIONS: tuple[type[exp.Expr], ...] = (
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
    exp.NullSafeEQ, exp.In, exp.Between, exp.Like, exp.ILike, exp.RegexpLike, exp.Is,
    exp.Escape, exp.Boolean, *BOOLEAN_FUNCTION_CLASSES,
)  # fmt: skip


def is_boolean(node: exp.Expr, types: Mapping[str, FieldType]) -> bool:
    """Whether an (already checked) expression yields true/false, judged from its structure."""
    if isinstance(node, exp.Paren):
        return is_boolean(node.this, types)
    if isinstance(node, _CONDITIONS):
        return True
    if isinstance(node, exp.Column):
        return types.get(node.name.lower()) is FieldType.BOOLEAN
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in BOOLEAN_ANONYMOUS_FUNCTIONS
    if isinstance(node, exp.Cast):
        target = node.args.get("to")
        return isinstance(target, exp.DataType) and target.this == exp.DataType.Type.BOOLEAN
    branches: list[exp.Expr | None]
    if isinstance(node, exp.Case):
        branches = [branch.args.get("true") for branch in node.args.get("ifs") or []]
        branches.append(node.args.get("default"))
    elif isinstance(node, exp.If):
        branches = [node.args.get("true"), node.args.get("false")]
    elif isinstance(node, exp.Coalesce):
        branches = [node.this, *node.expressions]
    else:
        return False
    present = [branch for branch in branches if branch is not None]
    return any(is_boolean(b, types) for b in present) and all(
        isinstance(b, exp.Null) or is_boolean(b, types) for b in present
    )



def describe_value(node: exp.Expr, types: Mapping[str, FieldType]) -> str:
    """Why a non-boolean expression is not a condition, with a hint how to make it one."""
    inner = node
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Column):
        ftype = types.get(inner.name.lower())
        example = f"{inner.name} = 'x'" if ftype is FieldType.STRING else f"{inner.name} > 0"
        kind = ftype.value if ftype else "a value"
        return f"field '{inner.name}' is {kind}, not true/false (e.g. write {example})"
    if isinstance(inner, exp.Null):
        return "NULL alone is not a condition"
    if isinstance(inner, exp.Literal):
        return f"the constant {clip(inner.sql(dialect='spark'))} is not a condition"
    return f"'{clip(inner.sql(dialect='spark'))}' computes a value; compare it (e.g. ... > 0)"

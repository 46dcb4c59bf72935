"""Rule-expression validation: what a fraud rule may and may not contain."""

from __future__ import annotations

import pytest

from catalog.rules.field_types import FieldSpec, FieldType
from catalog.rules.functions import ALLOWED_FUNCTION_NAMES
from catalog.rules.validator import RuleValidationError, ValidatedRule, validate_rule

pytestmark = pytest.mark.unit

T = FieldType
# The seed README's example pipelines, merged into one schema.
SCHEMA = [
    FieldSpec(name="transaction_id", type=T.STRING, nullable=False),
    FieldSpec(name="user_id", type=T.STRING, nullable=False),
    FieldSpec(name="amount", type=T.FLOAT, nullable=False),
    FieldSpec(name="currency", type=T.STRING),
    FieldSpec(name="timestamp", type=T.TIMESTAMP),
    FieldSpec(name="country", type=T.STRING),
    FieldSpec(name="description", type=T.STRING),
    FieldSpec(name="customer_email", type=T.STRING),
    FieldSpec(name="shipping_address", type=T.STRING),
    FieldSpec(name="is_new_wallet", type=T.BOOLEAN),
    FieldSpec(name="crypto_type", type=T.STRING),
    FieldSpec(name="amount_usd", type=T.DOUBLE),
    FieldSpec(name="loyalty_points", type=T.INTEGER),
    FieldSpec(name="membership_tier", type=T.STRING),
    FieldSpec(name="temperature", type=T.FLOAT),
    FieldSpec(name="vibration", type=T.FLOAT),
    FieldSpec(name="sequence_no", type=T.LONG),
    FieldSpec(name="signup_date", type=T.DATE),
]


def check(expression: str) -> ValidatedRule:
    return validate_rule(expression, SCHEMA)


def reject(expression: str, **kwargs: int) -> RuleValidationError:
    with pytest.raises(RuleValidationError) as info:
        validate_rule(expression, SCHEMA, **kwargs)
    return info.value


ACCEPTED = [
    # the seed README's "Rule Expression Syntax" (all but the subquery)
    "amount > 1000",
    "amount BETWEEN 100 AND 500",
    "amount IN (99.99, 199.99, 299.99)",
    "currency = 'USD'",
    "currency != 'EUR'",
    "description LIKE '%suspicious%'",
    "country IN ('XX', 'YY', 'ZZ')",
    "amount > 5000 AND currency = 'USD'",
    "(amount > 10000) OR (currency NOT IN ('USD', 'EUR'))",
    "customer_email IS NULL",
    "shipping_address IS NOT NULL",
    "amount > 1000 AND (currency = 'BTC' OR country = 'XX')",
    # the seed's use cases
    "loyalty_points > 10000 AND membership_tier = 'BRONZE'",
    "temperature > 150 OR temperature < -20",
    "temperature > 120 AND vibration > 50",
    "crypto_type = 'BTC' AND amount_usd > 50000 AND is_new_wallet = true",
    # operators
    "currency <> 'EUR'",
    "amount == 5 OR amount <=> 6 OR amount IS NOT DISTINCT FROM 7",
    "amount >= 1 AND amount <= 2 AND amount < 3",
    "amount NOT BETWEEN 1 AND 2",
    "description NOT LIKE '%ok%' AND description ILIKE '%GIFT%'",
    "description LIKE '100!%%' ESCAPE '!'",
    "description RLIKE '[0-9]{16}' OR description REGEXP 'x+'",
    "NOT (amount > 1 AND currency = 'USD')",
    "amount * 2 - 10 / 5 > 100 AND -amount < 0 AND amount % 3 = 1",
    "loyalty_points DIV 1000 >= 10",
    "currency || country = 'USDUS'",
    'currency = "USD"',
    "amount > 1e3 AND sequence_no > 1000L",
    # booleans
    "is_new_wallet",
    "NOT is_new_wallet",
    "is_new_wallet = true",
    "is_new_wallet IS TRUE",
    "TRUE",
    "coalesce(is_new_wallet, false)",
    # CASE / IF
    "CASE WHEN amount > 1000 THEN true ELSE false END",
    "CASE currency WHEN 'USD' THEN amount > 10000 WHEN 'EUR' THEN amount > 9000 ELSE false END",
    "CASE WHEN amount > 1 THEN 'big' ELSE 'small' END = 'big'",
    "if(amount > 1, is_new_wallet, null)",
    # string functions
    "lower(currency) = 'usd' AND upper(country) = 'US'",
    "length(description) > 100 AND trim(currency) = 'USD'",
    "substr(description, 1, 4) = 'gift' OR substring(description, 2) = 'x'",
    "regexp_extract(customer_email, '@(.*)$', 1) IN ('evil.com', 'bad.ru')",
    "endswith(customer_email, '.ru') OR contains(description, 'gift card')",
    "startswith(shipping_address, 'PO BOX')",
    "concat(currency, '-', country) = 'USD-US'",
    "levenshtein(shipping_address, 'x') < 3",
    # math
    "abs(amount - amount_usd) > 100 AND round(amount, 2) = 9.99",
    "floor(amount) = ceil(amount) AND sqrt(amount) > 10 AND pow(amount, 2) > 1",
    "greatest(amount, amount_usd) > 1000 AND least(temperature, vibration) < 0",
    "pmod(loyalty_points, 7) = 0",
    # null handling
    "nvl(customer_email, '') = '' AND nullif(currency, '') IS NULL",
    "isnull(customer_email) OR isnotnull(shipping_address)",
    # casts
    "cast(loyalty_points AS double) / 2 > 10.5",
    "try_cast(description AS int) > 5",
    "CAST(description AS BOOLEAN)",
    # dates
    "hour(timestamp) BETWEEN 0 AND 4",
    "year(timestamp) = 2024 AND month(timestamp) = 12 AND dayofweek(timestamp) IN (1, 7)",
    "date_add(signup_date, 30) > to_date(timestamp)",
    "date_format(timestamp, 'HH') = '03'",
    "timestamp > timestamp '2024-01-01 00:00:00' - INTERVAL 1 DAY",
    "datediff(to_date(timestamp), signup_date) < 7",
    "timestampdiff(HOUR, timestamp, timestamp '2024-06-01 12:00:00') < 3",
    "timestamp > '2024-01-01' AND timestamp < timestamp '2025-01-01 00:00:00'",
    "signup_date = date '2024-02-29'",
    "extract(YEAR FROM timestamp) = 2024",
    # metadata columns, case, quoting, layout
    "_event_id = 'abc' AND _kafka_offset > 10 AND _kafka_partition = 0",
    "_ingested_at > _kafka_timestamp AND _schema_version >= 2",
    "AMOUNT > 1 AND `Currency` = 'USD'",
    "`timestamp` IS NOT NULL",
    "  amount > 1\n\tAND currency = 'USD'  ",
    "amount > 1\r\nAND description = 'ü日本'",
    " AND ".join(["amount > 1"] * 60),
]


@pytest.mark.parametrize("expression", ACCEPTED)
def test_legitimate_rules_are_accepted(expression: str) -> None:
    rule = check(expression)
    assert rule.expression == expression.strip()
    # The Spark rendering is itself a valid rule and is stable.
    again = check(rule.normalized)
    assert again.normalized == rule.normalized
    assert again.columns == rule.columns


def test_columns_are_reported_with_schema_spelling() -> None:
    assert check("AMOUNT > 1 AND `Currency` = 'USD'").columns == {"amount", "currency"}
    assert check("amount > 1000 AND (currency = 'BTC' OR country = 'XX')").columns == {
        "amount",
        "currency",
        "country",
    }
    assert check("_kafka_offset > 10").columns == {"_kafka_offset"}
    assert check("TRUE").columns == set()


def test_functions_are_reported_as_written() -> None:
    rule = check("lower(currency) = 'usd' AND substr(description, 1, 3) = 'abc'")
    assert rule.functions == {"lower", "substr"}
    # 1000L is a cast sqlglot adds, not a function the user called
    assert check("sequence_no > 1000L").functions == set()
    assert check("cast(amount AS int) > 3").functions == {"cast"}


def test_normalized_is_spark_sql_with_quoted_identifiers() -> None:
    rule = check("amount > 5000 AND currency NOT IN ('USD', 'EUR')")
    assert rule.normalized == "amount > 5000 AND NOT currency IN ('USD', 'EUR')"
    assert check("AMOUNT > 1").normalized == "amount > 1"
    assert check("currency != 'EUR'").normalized == "currency <> 'EUR'"
    # A field named like a keyword is back-quoted, so Spark reads it as the field.
    assert check("timestamp IS NOT NULL").normalized == "NOT `timestamp` IS NULL"


def test_mapping_schema_is_accepted() -> None:
    rule = validate_rule("flag AND score > 2", {"flag": T.BOOLEAN, "score": T.INTEGER})
    assert rule.columns == {"flag", "score"}


# Each allowed function name with an expression calling it.
FUNCTION_EXAMPLES = {
    "abs": "abs(amount) > 1",
    "add_months": "add_months(signup_date, 1) > signup_date",
    "array": "array_contains(array('XX', 'YY'), country)",
    "array_contains": "array_contains(array('XX', 'YY'), country)",
    "ascii": "ascii(currency) = 85",
    "bigint": "bigint(description) > 1",
    "boolean": "boolean(description)",
    "bround": "bround(amount, 2) > 1",
    "btrim": "btrim(currency) = 'USD'",
    "cast": "cast(amount AS int) > 1",
    "cbrt": "cbrt(amount) > 1",
    "ceil": "ceil(amount) > 1",
    "ceiling": "ceiling(amount) > 1",
    "char_length": "char_length(description) > 1",
    "character_length": "character_length(description) > 1",
    "coalesce": "coalesce(amount, 0) > 1",
    "concat": "concat(currency, country) = 'x'",
    "concat_ws": "concat_ws('-', currency, country) = 'x'",
    "contains": "contains(description, 'x')",
    "date": "date(timestamp) = signup_date",
    "date_add": "date_add(signup_date, 1) > signup_date",
    "date_diff": "date_diff(signup_date, signup_date) = 0",
    "date_format": "date_format(timestamp, 'yyyy') = '2024'",
    "date_part": "date_part('year', timestamp) = 2024",
    "date_sub": "date_sub(signup_date, 1) < signup_date",
    "date_trunc": "date_trunc('day', timestamp) = timestamp",
    "dateadd": "dateadd(DAY, 1, timestamp) > timestamp",
    "datediff": "datediff(signup_date, signup_date) = 0",
    "datepart": "datepart('year', timestamp) = 2024",
    "day": "day(timestamp) = 1",
    "dayofmonth": "dayofmonth(timestamp) = 1",
    "dayofweek": "dayofweek(timestamp) = 1",
    "dayofyear": "dayofyear(timestamp) = 1",
    "double": "double(description) > 1",
    "endswith": "endswith(description, 'x')",
    "exp": "exp(amount) > 1",
    "extract": "extract(YEAR FROM timestamp) = 2024",
    "float": "float(description) > 1",
    "floor": "floor(amount) > 1",
    "from_unixtime": "from_unixtime(sequence_no) = 'x'",
    "greatest": "greatest(amount, 1) > 1",
    "hour": "hour(timestamp) = 1",
    "if": "if(amount > 1, 1, 0) = 1",
    "ifnull": "ifnull(currency, 'x') = 'x'",
    "initcap": "initcap(currency) = 'Usd'",
    "instr": "instr(customer_email, '@') = 0",
    "int": "int(description) > 1",
    "isnan": "isnan(amount)",
    "isnotnull": "isnotnull(currency)",
    "isnull": "isnull(currency)",
    "last_day": "last_day(signup_date) = signup_date",
    "lcase": "lcase(currency) = 'usd'",
    "least": "least(amount, 1) < 1",
    "left": "left(currency, 1) = 'U'",
    "len": "len(currency) = 3",
    "length": "length(currency) = 3",
    "levenshtein": "levenshtein(currency, 'USD') > 1",
    "ln": "ln(amount) > 1",
    "locate": "locate('@', customer_email) = 0",
    "log": "log(10, amount) > 1",
    "log10": "log10(amount) > 1",
    "log2": "log2(amount) > 1",
    "lower": "lower(currency) = 'usd'",
    "lpad": "lpad(currency, 5, '*') = '**USD'",
    "make_date": "make_date(2024, 1, 1) < signup_date",
    "minute": "minute(timestamp) = 1",
    "mod": "mod(loyalty_points, 2) = 1",
    "month": "month(timestamp) = 1",
    "months_between": "months_between(timestamp, timestamp) = 0",
    "nanvl": "nanvl(amount, 0) > 1",
    "nullif": "nullif(currency, '') IS NULL",
    "nvl": "nvl(currency, 'x') = 'x'",
    "nvl2": "nvl2(currency, 1, 0) = 1",
    "octet_length": "octet_length(currency) = 3",
    "pmod": "pmod(loyalty_points, 2) = 1",
    "position": "position('@', customer_email) = 0",
    "pow": "pow(amount, 2) > 1",
    "power": "power(amount, 2) > 1",
    "quarter": "quarter(timestamp) = 1",
    "regexp": "regexp(description, 'x')",
    "regexp_count": "regexp_count(description, 'x') > 1",
    "regexp_extract": "regexp_extract(description, 'x', 0) = 'x'",
    "regexp_like": "regexp_like(description, 'x')",
    "regexp_replace": "regexp_replace(description, 'x', 'y') = 'y'",
    "repeat": "repeat(currency, 2) = 'USDUSD'",
    "replace": "replace(currency, 'U', 'u') = 'uSD'",
    "reverse": "reverse(currency) = 'DSU'",
    "right": "right(currency, 1) = 'D'",
    "rlike": "rlike(description, 'x')",
    "round": "round(amount, 2) > 1",
    "rpad": "rpad(currency, 5, '*') = 'USD**'",
    "rtrim": "rtrim(currency) = 'USD'",
    "ltrim": "ltrim(currency) = 'USD'",
    "second": "second(timestamp) = 1",
    "sign": "sign(amount) = -1",
    "signum": "signum(amount) = -1",
    "size": "size(split(description, ' ')) > 50",
    "soundex": "soundex(description) = 'x'",
    "space": "concat(currency, space(2)) = 'USD  '",
    "split": "size(split(description, ' ')) > 50",
    "split_part": "split_part(customer_email, '@', 2) = 'x'",
    "sqrt": "sqrt(amount) > 1",
    "startswith": "startswith(description, 'x')",
    "string": "string(amount) = '1'",
    "substr": "substr(currency, 1, 1) = 'U'",
    "substring": "substring(currency, 1, 1) = 'U'",
    "timestamp": "timestamp(signup_date) < timestamp",
    "timestamp_seconds": "timestamp_seconds(sequence_no) < timestamp",
    "timestampadd": "timestampadd(HOUR, 1, timestamp) > timestamp",
    "timestampdiff": "timestampdiff(HOUR, timestamp, timestamp) = 0",
    "to_date": "to_date(timestamp) = signup_date",
    "to_timestamp": "to_timestamp(description, 'yyyy-MM-dd') < timestamp",
    "to_unix_timestamp": "to_unix_timestamp(timestamp) > 0",
    "translate": "translate(currency, 'U', 'u') = 'uSD'",
    "trim": "trim(currency) = 'USD'",
    "trunc": "trunc(signup_date, 'MM') = signup_date",
    "try_cast": "try_cast(description AS double) > 1",
    "ucase": "ucase(currency) = 'USD'",
    "unix_timestamp": "unix_timestamp(timestamp) > 0",
    "upper": "upper(currency) = 'USD'",
    "weekday": "weekday(timestamp) = 1",
    "weekofyear": "weekofyear(timestamp) = 1",
    "year": "year(timestamp) = 2024",
}


def test_every_allowed_function_has_an_example() -> None:
    assert set(ALLOWED_FUNCTION_NAMES) == set(FUNCTION_EXAMPLES)


@pytest.mark.parametrize(("name", "expression"), sorted(FUNCTION_EXAMPLES.items()))
def test_each_allowed_function_is_accepted(name: str, expression: str) -> None:
    rule = check(expression)
    assert name in rule.functions
    check(rule.normalized)


# (expression, text the message must contain)
REJECTED = [
    # SQL injection and statements
    ("1=1; DROP TABLE rules", "';' is not allowed"),
    ("amount > 0;", "';' is not allowed"),
    ("amount > 0 --", "comments are not allowed"),
    ("amount > 0 /* sneaky */", "comments are not allowed"),
    ("amount > 0 UNION SELECT password FROM users", "'UNION' is not allowed"),
    ("SELECT 1", "not a SQL statement ('SELECT')"),
    ("DROP TABLE x", "not a SQL statement ('DROP TABLE')"),
    ("SET spark.sql.ansi.enabled=false", "not a SQL statement ('SET spark')"),
    ("INSERT INTO rules VALUES (1)", "not a SQL statement ('INSERT INTO')"),
    ("comment LIKE '%x%'", "write it in backquotes: `comment`"),
    # subqueries and tables
    ("user_id NOT IN (SELECT user_id FROM whitelist_table)", "subqueries are not allowed"),
    ("EXISTS (SELECT 1 FROM users)", "subqueries are not allowed"),
    ("(SELECT max(amount) FROM txns) < amount", "subqueries are not allowed"),
    ("amount = ANY (SELECT 1)", "subqueries are not allowed"),
    # code execution and UDFs
    ("reflect('java.lang.Runtime', 'exec', 'ls') IS NULL", "function 'reflect' is not allowed"),
    ("java_method('java.lang.Thread', 'sleep', 1000L) IS NULL", "'java_method' is not allowed"),
    ("try_reflect('java.lang.Runtime', 'exec', 'ls') IS NULL", "'try_reflect' is not allowed"),
    ("my_udf(amount) > 1", "function 'my_udf' is not allowed"),
    ("`evil udf`(amount) > 1", "evil udf"),
    ("lowr(currency) = 'usd'", "did you mean 'lower'"),
    ("db.fn(amount) > 1", "'.' access is not allowed"),
    # non-deterministic / environment functions
    ("rand() > 0.5", "function 'rand' is not allowed in rules: it is random"),
    ("uuid() = 'x'", "function 'uuid' is not allowed"),
    ("current_user() = 'admin'", "function 'current_user' is not allowed"),
    ("input_file_name() = 'x'", "function 'input_file_name' is not allowed"),
    ("spark_partition_id() = 0", "function 'spark_partition_id' is not allowed"),
    ("raise_error('boom') IS NULL", "would stop the streaming job"),
    ("md5(customer_email) = 'x'", "function 'md5' is not allowed"),
    ("get_json_object(description, '$.a') = 'x'", "'get_json_object' is not allowed"),
    # columns
    ("amout > 1", "unknown field 'amout' (did you mean 'amount'"),
    ("curency = 'USD'", "did you mean 'currency'"),
    ("password = 'x'", "unknown field 'password'"),
    ("t.amount > 1", "qualified name 't.amount' is not allowed"),
    ("cat.db.t.amount > 1", "qualified name"),
    ("event_date = current_date()", "unknown field 'event_date'"),
    ("*", "'*' is not allowed"),
    # aggregates, windows, generators, lambdas
    ("sum(amount) > 1000", "aggregate function 'sum' is not allowed"),
    ("count(*) > 5", "aggregate function 'count' is not allowed"),
    ("avg(amount) > 1", "aggregate function 'avg' is not allowed"),
    ("max(amount) > 1", "aggregate function 'max' is not allowed"),
    ("size(collect_list(amount)) > 1", "aggregate function 'collect_list' is not allowed"),
    ("sum(amount) OVER (PARTITION BY user_id) > 10000", "a window needs ORDER BY"),
    ("row_number() OVER (ORDER BY amount) = 1", "'row_number' cannot be used over a window"),
    ("explode(array(1, 2)) = 1", "generator function 'explode' is not allowed"),
    ("size(transform(array(1), x -> x + 1)) > 0", "'transform' is not allowed"),
    ("x -> x", "lambda functions and '->' are not allowed"),
    # parameters and variables
    ("amount > ${threshold}", "'${threshold}' are not allowed"),
    ("amount > :threshold", "':threshold' are not allowed"),
    ("amount > ?", "'?' are not allowed"),
    ("/*+ BROADCAST(t) */ amount > 1", "optimizer hints are not allowed"),
    # not a condition
    ("amount + 1", "must be a condition that is true or false"),
    ("amount", "field 'amount' is float, not true/false"),
    ("currency", "e.g. write currency = 'x'"),
    ("'x'", "the constant 'x' is not a condition"),
    ("1", "the constant 1 is not a condition"),
    ("NULL", "NULL alone is not a condition"),
    ("lower(currency)", "computes a value"),
    ("CASE WHEN amount > 1 THEN 'a' ELSE 'b' END", "must be a condition"),
    ("coalesce(amount, 0)", "must be a condition"),
    # syntax
    ("amount > 1)", "unexpected ')'"),
    ("(amount > 1", "missing ')'"),
    ("currency = 'USD", "unterminated string"),
    ("`currency = 'USD'", "unterminated identifier"),
    ("amount > 1 garbage", "unexpected 'garbage' after the condition"),
    ("amount > 1 §", "character U+00A7 is only allowed inside quotes"),
    ("amount > 1 /* never closed", "unterminated comment"),
    ("CASE WHEN amount > 1 THEN true", "incomplete expression"),
    ("amount >", "incomplete expression near '>'"),
    ("amount > 1 AND", "incomplete expression"),
    ("amount > 1 ORDER BY amount", "unexpected 'ORDER BY'"),
    ("amount IN ()", "IN needs at least one value"),
    ("cast(amount AS array<int>) IS NULL", "cannot cast to 'ARRAY<INT>'"),
    ("x'ff' = currency", "only plain string literals"),
    # empty, control characters
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("amount > 1\x00", "control character U+0000"),
    ("currency = 'US\u202eD'", "control character U+202E"),
    ("amount > 1\x1b[2J", "control character U+001B"),
]


@pytest.mark.parametrize(("expression", "fragment"), REJECTED)
def test_hostile_or_broken_rules_are_rejected(expression: str, fragment: str) -> None:
    error = reject(expression)
    assert fragment in error.message
    assert len(error.message) < 400
    if len(expression) > 80:
        assert expression[:81] not in error.message


def test_error_reports_token_and_position() -> None:
    error = reject("amount > 1 AND amout < 5")
    assert (error.token, error.position) == ("amout", 15)
    assert "at position 15" in error.message
    assert error.to_dict() == {"message": error.message, "token": "amout", "position": 15}

    error = reject("user_id NOT IN (SELECT user_id FROM whitelist_table)")
    assert (error.token, error.position) == ("SELECT", 16)

    error = reject("amount > 0 AND reflect('java.lang.Runtime', 'exec', 'ls') IS NULL")
    assert (error.token, error.position) == ("reflect", 15)

    error = reject("amount > 1 ORDER BY amount")
    assert (error.token, error.position) == ("ORDER BY", 11)


def test_position_counts_leading_whitespace() -> None:
    error = reject("   amount > 1 AND bogus = 2")
    assert error.position == 18


def test_too_long() -> None:
    error = reject(" OR ".join(["amount > 1"] * 400))
    assert "too long" in error.message and "at most 4000" in error.message
    assert "too long" in reject("amount > 100", max_length=5).message


def test_deep_parentheses_do_not_crash() -> None:
    error = reject("(" * 5000 + "amount > 1" + ")" * 5000, max_length=20000)
    assert "nested too deeply" in error.message
    assert error.token == "("


def test_deep_not_chain_does_not_crash() -> None:
    error = reject("NOT " * 950 + "is_new_wallet")
    assert "nested too deeply" in error.message


def test_depth_limit_counts_the_syntax_tree() -> None:
    rule = "NOT " * 30 + "is_new_wallet"
    check(rule)
    assert "more than 20 levels" in reject(rule, max_depth=20).message


def test_and_chains_are_not_nesting() -> None:
    check(" AND ".join(f"amount > {n}" for n in range(200)))


def test_long_unknown_name_is_clipped() -> None:
    name = "x" * 300
    error = reject(f"{name} > 1")
    assert name[:81] not in error.message
    assert error.token is not None and len(error.token) <= 40


def test_non_string_is_rejected() -> None:
    with pytest.raises(RuleValidationError):
        validate_rule(123, SCHEMA)  # type: ignore[arg-type]

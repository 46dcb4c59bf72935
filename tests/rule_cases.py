"""Rule expressions shared by the validator, API and Spark tests: hostile ones that must be
refused (with the token the refusal must name) and legitimate look-alikes that must be accepted.

`SCHEMA` is the pipeline schema they are written against; `SAMPLE_ROWS` are events to evaluate
the look-alikes on, and `EXPECTED` gives, for some look-alikes, the result on each sample row
worked out by hand (None = SQL NULL).
"""

from __future__ import annotations

from datetime import date, datetime

SCHEMA = [
    {"name": "transaction_id", "type": "string", "nullable": False},
    {"name": "amount", "type": "double", "nullable": False},
    {"name": "currency", "type": "string", "nullable": True},
    {"name": "event_time", "type": "timestamp", "nullable": True},
    {"name": "signup_date", "type": "date", "nullable": True},
    {"name": "country", "type": "string", "nullable": True},
    {"name": "description", "type": "string", "nullable": True},
    {"name": "is_new_wallet", "type": "boolean", "nullable": True},
    {"name": "loyalty_points", "type": "integer", "nullable": True},
    {"name": "timestamp", "type": "timestamp", "nullable": True},
]

U2029 = "\u2029"

# (expression, a text the refusal's `token` must contain)
HOSTILE: list[tuple[str, str]] = [
    # CPU and memory bombs: size arguments must be small literals, growth may not nest
    ("length(repeat('a', 1000000000)) > 0", "repeat"),
    ("length(lpad(transaction_id, 2147483647, 'b')) > 0", "lpad"),
    ("levenshtein(repeat('a', 200000), repeat('b', 200000)) > 0", "repeat"),
    ("size(split(repeat('a,', 100000000), ',')) > 1", "repeat"),
    ("length(rpad(currency, 99999, 'x')) > 0", "rpad"),
    ("length(space(100000)) > 0", "space"),
    ("length(repeat(transaction_id, 10000)) > 0", "repeat"),
    ("length(repeat(repeat('ab', 100), 100)) > 0", "repeat"),
    ("length(lpad(repeat('a', 10), 10000, 'b')) > 0", "lpad"),
    ("length(repeat('a', loyalty_points)) > 0", "repeat"),
    ("length(lpad(currency, loyalty_points * 1000, 'x')) > 0", "lpad"),
    ("length(repeat('abc', 5000)) > 0", "repeat"),
    ("length(rpad('x', 10001, 'y')) > 0", "rpad"),
    ("length(space(20000 - 1)) > 1", "space"),
    # regular expressions that backtrack (or cannot be checked)
    ("transaction_id RLIKE '(a+)+$'", "(a+)+$"),
    ("currency REGEXP '(a|aa)+$'", "(a|aa)+$"),
    ("regexp_like(description, '(x*)*y')", "(x*)*y"),
    ("regexp_extract(description, '(\\\\d+\\\\.?)+$', 0) = 'x'", "(\\d+\\.?)+$"),
    ("regexp_replace(description, '(a|ab)*c', '') = ''", "(a|ab)*c"),
    ("regexp_count(description, '\\\\s*\\\\s+$') > 0", "\\s*\\s+$"),
    ("size(split(description, '(,+)+')) > 1", "(,+)+"),
    ("description RLIKE 'a{1,100000}'", "a{1,100000}"),
    ("description RLIKE currency", "currency"),
    ("description RLIKE '(\\\\w|\\\\d)+$'", "(\\w|\\d)+$"),
    ("description RLIKE '(a?){25}a{25}'", "(a?){25}a{25}"),
    ("description RLIKE '(.*a){20}'", "(.*a){20}"),
    ("description RLIKE '(a)\\\\1'", "(a)\\1"),
    ("description RLIKE '(?=a)a'", "(?=a)a"),
    ("description RLIKE '.*.*.*x'", ".*.*.*x"),
    ("regexp(description, '(ab+)+')", "(ab+)+"),
    ("description LIKE '%a%b%c%d%e%f%'", "%a%b%c%d%e%f%"),
    ("description LIKE currency", "currency"),
    ("description RLIKE concat('(a', '+)+')", "CONCAT"),
    # clock, random and session functions
    ("current_timestamp() > event_time", "current_timestamp"),
    ("now() > event_time", "now"),
    ("unix_timestamp() > 0", "unix_timestamp"),
    ("current_date() > signup_date", "current_date"),
    ("event_time > current_timestamp", "current_timestamp"),
    ("signup_date = current_date", "current_date"),
    ("datediff(now(), event_time) > 1", "now"),
    ("hour(current_timestamp()) = 3", "current_timestamp"),
    ("event_time > localtimestamp", "localtimestamp"),
    ("curdate() > signup_date", "curdate"),
    ("rand() > 0.5", "rand"),
    ("randn() > 0", "randn"),
    ("random() < 0.1", "random"),
    ("uuid() = transaction_id", "uuid"),
    ("current_user() = 'admin'", "current_user"),
    ("spark_partition_id() = 0", "spark_partition_id"),
    ("monotonically_increasing_id() > 5", "monotonically_increasing_id"),
    ("input_file_name() = ''", "input_file_name"),
    ("current_timezone() = 'UTC'", "current_timezone"),
    # cast type parameters
    ("CAST(amount AS DECIMAL(reflect('java.lang.Thread','sleep',10000L), 2)) > 1", "reflect"),
    ("CAST(amount AS DECIMAL(39, 2)) > 1", "39"),
    ("CAST(amount AS DECIMAL(5, 7)) > 1", "DECIMAL(5, 7)"),
    ("CAST(currency AS VARCHAR(java_method('a', 'b'))) = 'x'", "java_method"),
    ("amount::decimal(uuid(), 2) > 1", "uuid"),
    ("CAST(amount AS DECIMAL(10, loyalty_points)) > 1", "loyalty_points"),
    # where sqlglot and Spark would read the text differently
    ("ts_or_ds_to_date(currency) > '2020-01-01'", "ts_or_ds_to_date"),
    ("str_to_time(currency, 'x') > event_time", "str_to_time"),
    ("time_to_str(event_time, '%Y') = '2024'", "time_to_str"),
    (f"currency = 'x'{U2029}", "U+2029"),
    (f"amount > 1{U2029}AND currency = 'x'", "U+2029"),
    ("amount\u00a0> 1", "U+00A0"),
    ("amount >\u200b1", "U+200B"),
    ("amount = 1e400", "1e400"),
    ("amount > 123456789012345678901234567890123456789012", "1234567890"),
    ("currency RLIKE '\\d+'", "\\d"),
    ("currency = r'raw'", "r'raw'"),
    ("currency = X'41'", "X'41'"),
    # statements and Java calls
    ("EXECUTE IMMEDIATE 'SELECT 1'", "EXECUTE"),
    ("ADD JAR '/tmp/evil.jar'", "ADD"),
    ("SET spark.sql.ansi.enabled = false", "SET"),
    ("DROP TABLE rules", "DROP"),
    ("reflect('java.lang.Thread', 'sleep', 10000L) IS NULL", "reflect"),
    ("java_method('java.lang.System', 'exit', 0) = 1", "java_method"),
]

LOOKALIKES: list[str] = [
    # short literal sizes
    "repeat('ab', 3) = currency",
    "length(repeat('-', 20)) = 20",
    "lpad(currency, 5, '0') = '00USD'",
    "rpad(currency, 6, '*') = 'USD***'",
    "concat(currency, space(2)) = 'USD  '",
    "repeat(currency, 2) = 'USDUSD'",
    "lpad(transaction_id, 10000, 'x') IS NOT NULL",
    # plain, anchored regular expressions
    "currency RLIKE '^[A-Z]{3}$'",
    "description RLIKE '^gift card'",
    "transaction_id RLIKE '^\\\\d{4}-\\\\d{2}$'",
    "country REGEXP '^(GB|FR|DE)$'",
    "regexp_like(description, '^[a-z ]+$')",
    "regexp_extract(description, '^([a-z]+)', 1) = 'gift'",
    "regexp_replace(currency, '[0-9]', '') = 'USD'",
    "regexp_count(description, 'a') > 1",
    "size(split(description, ' ')) > 2",
    "description RLIKE '.*card.*'",
    "description RLIKE '^[^@]+@[^@]+\\\\.com$'",
    "description LIKE '%gift%card%'",
    # quoted quotes and escapes
    "currency = 'O''Brien'",
    "description = 'it''s'",
    'currency = "O""Brien"',
    "description = 'say \\'hi\\''",
    "description LIKE '%\\\\_%'",
    "description = 'line1\\nline2'",
    "currency = 'café'",
    f"currency = 'a{U2029}b'",
    # casts with literal type parameters
    "CAST(amount AS DECIMAL(12,2)) > 100.00",
    "CAST(amount AS DECIMAL(38, 0)) > 1",
    "try_cast(description AS INT) > 5",
    "amount::DECIMAL(10, 2) = 10.5",
    # time compared with literals and the event's own fields
    "event_time > TIMESTAMP '2024-01-01 00:00:00'",
    "event_time < '2025-01-01'",
    "signup_date = DATE '2024-02-29'",
    "datediff(to_date(event_time), signup_date) < 7",
    "unix_timestamp(event_time) > 1700000000",
    "hour(event_time) BETWEEN 0 AND 4",
    "date_format(event_time, 'HH') = '03'",
    "`timestamp` IS NOT NULL",
    "timestamp > event_time",
    "to_date(event_time) = signup_date",
    # numbers, conditions and other plain rules
    "amount > 1e5 OR amount < -1e5",
    "amount > 12345678901234567890",
    "is_new_wallet AND amount > 100",
    "currency IN ('USD', 'EUR') AND NOT is_new_wallet",
    "coalesce(description, '') = ''",
    "CASE WHEN amount > 100 THEN true ELSE false END",
    "levenshtein(currency, 'USD') < 2",
    "amount % 2 = 0",
    "substr(transaction_id, 1, 3) = 'txn'",
]

SAMPLE_ROWS: list[dict[str, object]] = [
    {"transaction_id": "1234-56", "amount": 150.0, "currency": "USD",
     "event_time": datetime(2024, 6, 1, 3, 30), "signup_date": date(2024, 5, 30),
     "country": "GB", "description": "gift card for a friend", "is_new_wallet": True,
     "loyalty_points": 3, "timestamp": datetime(2024, 6, 1, 0, 0)},
    {"transaction_id": "txn-9", "amount": 10.5, "currency": "O'Brien",
     "event_time": datetime(2023, 12, 31, 23, 0), "signup_date": date(2024, 2, 29),
     "country": "US", "description": "it's", "is_new_wallet": False,
     "loyalty_points": 0, "timestamp": None},
    {"transaction_id": "x", "amount": 1e6, "currency": None, "event_time": None,
     "signup_date": None, "country": None, "description": None, "is_new_wallet": None,
     "loyalty_points": None, "timestamp": datetime(2025, 1, 1, 0, 0)},
    {"transaction_id": "txn_1", "amount": 2.0, "currency": 'O"Brien',
     "event_time": datetime(2025, 2, 1, 12, 0), "signup_date": date(2025, 1, 31),
     "country": "DE", "description": "line1\nline2", "is_new_wallet": False,
     "loyalty_points": 7, "timestamp": datetime(2025, 2, 1, 13, 0)},
]

# Results on SAMPLE_ROWS worked out by hand, row by row.
EXPECTED: dict[str, list[bool | None]] = {
    "currency = 'O''Brien'": [False, True, None, False],
    'currency = "O""Brien"': [False, False, None, True],
    "description = 'it''s'": [False, True, None, False],
    "description = 'line1\\nline2'": [False, False, None, True],
    "currency RLIKE '^[A-Z]{3}$'": [True, False, None, False],
    "transaction_id RLIKE '^\\\\d{4}-\\\\d{2}$'": [True, False, False, False],
    "country REGEXP '^(GB|FR|DE)$'": [True, False, None, True],
    "description RLIKE '^gift card'": [True, False, None, False],
    "lpad(currency, 5, '0') = '00USD'": [True, False, None, False],
    "repeat(currency, 2) = 'USDUSD'": [True, False, None, False],
    "CAST(amount AS DECIMAL(12,2)) > 100.00": [True, False, True, False],
    "amount::DECIMAL(10, 2) = 10.5": [False, True, False, False],
    "event_time > TIMESTAMP '2024-01-01 00:00:00'": [True, False, None, True],
    "signup_date = DATE '2024-02-29'": [False, True, None, False],
    "hour(event_time) BETWEEN 0 AND 4": [True, False, None, False],
    "`timestamp` IS NOT NULL": [True, False, True, True],
    "timestamp > event_time": [False, None, None, True],
    "amount > 1e5 OR amount < -1e5": [False, False, True, False],
    "is_new_wallet AND amount > 100": [True, False, None, False],
    "substr(transaction_id, 1, 3) = 'txn'": [False, True, False, True],
    "description LIKE '%gift%card%'": [True, False, None, False],
}

{#- The days an incremental run of a day-grained mart rebuilds: vars min_date (inclusive) and
    max_date (exclusive), ISO dates, e.g. --vars '{"min_date": "2026-03-09", "max_date":
    "2026-03-10"}' (Dagster passes a day partition's time window). Without them, or when the
    table is built for the first time / with --full-refresh, every day is built. -#}
{% macro day_window(column) -%}
    {%- set bounds = day_window_bounds() -%}
    {%- if bounds and is_incremental() -%}
        {{ column }} >= date '{{ bounds[0] }}' and {{ column }} < date '{{ bounds[1] }}'
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- (min_date, max_date) as validated ISO dates, or none when neither var is set. -#}
{% macro day_window_bounds() -%}
    {%- set lo = var('min_date', none) -%}
    {%- set hi = var('max_date', none) -%}
    {%- if lo is none and hi is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if lo is none or hi is none -%}
        {{ exceptions.raise_compiler_error('min_date and max_date go together; got '
            ~ lo ~ ' and ' ~ hi) }}
    {%- endif -%}
    {%- set parsed = [] -%}
    {%- for value in [lo, hi] -%}
        {%- set text = value | string -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
            {{ exceptions.raise_compiler_error('not an ISO date: ' ~ text) }}
        {%- endif -%}
        {%- do parsed.append(modules.datetime.date.fromisoformat(text).isoformat()) -%}
    {%- endfor -%}
    {%- if parsed[0] >= parsed[1] -%}
        {{ exceptions.raise_compiler_error('min_date must be before max_date: ' ~ parsed) }}
    {%- endif -%}
    {{ return(parsed) }}
{%- endmacro %}

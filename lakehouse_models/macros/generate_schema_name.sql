{#- <prefix><custom schema> (staging, gold), not dbt's default <target>_<custom>: the schema
    names are the lakehouse's own; the prefix isolates a test run or a second stack. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ env_var('SENTINEL_LAKEHOUSE_SCHEMA_PREFIX', '') ~ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

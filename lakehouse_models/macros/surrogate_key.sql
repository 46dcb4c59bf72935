{#- md5 of the grain columns joined with '|' (nulls as '~'), the key of every mart. -#}
{% macro surrogate_key(columns) -%}
    md5(concat_ws('|'
    {%- for column in columns %}, coalesce(cast({{ column }} as string), '~'){% endfor -%}
    ))
{%- endmacro %}

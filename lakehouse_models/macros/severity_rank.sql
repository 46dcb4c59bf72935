{#- critical > warning > info, so that max() picks the worst severity. -#}
{% macro severity_rank(column) -%}
    case {{ column }} when 'critical' then 3 when 'warning' then 2 when 'info' then 1 else 0 end
{%- endmacro %}

{% macro severity_of_rank(column) -%}
    case {{ column }} when 3 then 'critical' when 2 then 'warning' when 1 then 'info' end
{%- endmacro %}

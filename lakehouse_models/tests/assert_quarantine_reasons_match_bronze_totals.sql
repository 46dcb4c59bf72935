-- fct_quarantine_reasons counts every quarantined record once, per pipeline.
-- meta.dagster.ref: an asset check of fct_quarantine_reasons in Dagster (a singular test
-- is one only when it names its asset).
{{ config(meta={'dagster': {'ref': {'name': 'fct_quarantine_reasons'}}}) }}
with quarantined as (

    select pipeline_id, count(*) as total
    from {{ source('bronze', 'all_quarantine') }}
    group by pipeline_id

),

reasons as (

    select pipeline_id, sum(quarantined) as total from {{ ref('fct_quarantine_reasons') }}
    group by pipeline_id

),

final as (

    select quarantined.pipeline_id, quarantined.total as bronze, reasons.total as mart_total
    from quarantined
    left join reasons on quarantined.pipeline_id = reasons.pipeline_id
    where coalesce(reasons.total, -1) != quarantined.total

)

select * from final

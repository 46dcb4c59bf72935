-- dim_entity_risk covers every bronze event that has a key, and fct_quarantine_reasons every
-- quarantined record, per pipeline.
-- meta.dagster.ref: an asset check of dim_entity_risk in Dagster (a singular test over
-- several relations would otherwise only be logged as an observation).
{{ config(meta={'dagster': {'ref': {'name': 'dim_entity_risk'}}}) }}
with keyed_events as (

    select pipeline_id, count(*) as total
    from {{ source('bronze', 'all_events') }}
    where key_value is not null
    group by pipeline_id

),

quarantined as (

    select pipeline_id, count(*) as total
    from {{ source('bronze', 'all_quarantine') }}
    group by pipeline_id

),

entities as (

    select pipeline_id, sum(events) as total from {{ ref('dim_entity_risk') }}
    group by pipeline_id

),

reasons as (

    select pipeline_id, sum(quarantined) as total from {{ ref('fct_quarantine_reasons') }}
    group by pipeline_id

),

final as (

    select 'dim_entity_risk' as mart, keyed_events.pipeline_id, keyed_events.total as bronze,
        entities.total as mart_total
    from keyed_events
    left join entities on keyed_events.pipeline_id = entities.pipeline_id
    where coalesce(entities.total, -1) != keyed_events.total

    union all

    select 'fct_quarantine_reasons' as mart, quarantined.pipeline_id, quarantined.total as bronze,
        reasons.total as mart_total
    from quarantined
    left join reasons on quarantined.pipeline_id = reasons.pipeline_id
    where coalesce(reasons.total, -1) != quarantined.total

)

select * from final

-- dim_entity_risk covers every bronze event that has a key, per pipeline.
-- (One mart per singular test: dim_entity_risk is rebuilt in full, the day facts by day
-- partition in another Dagster op, and a test over both would be an asset check of neither.)
-- meta.dagster.ref: an asset check of dim_entity_risk in Dagster (a singular test is one only
-- when it names its asset).
{{ config(meta={'dagster': {'ref': {'name': 'dim_entity_risk'}}}) }}
with keyed_events as (

    select pipeline_id, count(*) as total
    from {{ source('bronze', 'all_events') }}
    where key_value is not null
    group by pipeline_id

),

entities as (

    select pipeline_id, sum(events) as total from {{ ref('dim_entity_risk') }}
    group by pipeline_id

),

final as (

    select keyed_events.pipeline_id, keyed_events.total as bronze, entities.total as mart_total
    from keyed_events
    left join entities on keyed_events.pipeline_id = entities.pipeline_id
    where coalesce(entities.total, -1) != keyed_events.total

)

select * from final

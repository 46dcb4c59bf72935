-- dim_entity_risk covers every bronze event that has a key, per pipeline, up to the last
-- one it was built from.
-- (One mart per singular test: dim_entity_risk is rebuilt in full, the day facts by day
-- partition in another Dagster op, and a test over both would be an asset check of neither.)
-- meta.dagster.ref: an asset check of dim_entity_risk in Dagster (a singular test is one only
-- when it names its asset).
{{ config(meta={'dagster': {'ref': {'name': 'dim_entity_risk'}}}) }}
with entities as (

    select
        pipeline_id,
        sum(events) as total,
        max(last_ingested_at) as built_through
    from {{ ref('dim_entity_risk') }}
    group by pipeline_id

),

keyed_events as (

    -- bronze as the build saw it: a live stream archives more events after the build
    -- (a micro-batch commits all its rows with one ingestion time, or none of them)
    select bronze.pipeline_id, count(*) as total
    from {{ source('bronze', 'all_events') }} as bronze
    left join entities on bronze.pipeline_id = entities.pipeline_id
    where bronze.key_value is not null
        and (entities.built_through is null or bronze.ingested_at <= entities.built_through)
    group by bronze.pipeline_id

),

final as (

    select keyed_events.pipeline_id, keyed_events.total as bronze, entities.total as mart_total
    from keyed_events
    left join entities on keyed_events.pipeline_id = entities.pipeline_id
    where coalesce(entities.total, -1) != keyed_events.total

)

select * from final

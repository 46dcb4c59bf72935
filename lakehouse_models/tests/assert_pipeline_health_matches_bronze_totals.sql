-- Events, quarantined records and alerts of fct_pipeline_health_daily add up to the bronze
-- and silver totals of every pipeline.
-- meta.dagster.ref: an asset check of fct_pipeline_health_daily in Dagster (a singular test over
-- several relations would otherwise only be logged as an observation).
{{ config(meta={'dagster': {'ref': {'name': 'fct_pipeline_health_daily'}}}) }}
with bronze_events as (

    select pipeline_id, count(*) as events
    from {{ source('bronze', 'all_events') }}
    group by pipeline_id

),

bronze_quarantine as (

    select pipeline_id, count(*) as quarantined
    from {{ source('bronze', 'all_quarantine') }}
    group by pipeline_id

),

silver_alerts as (

    select pipeline_id, count(*) as alerts
    from {{ source('silver', 'all_alerts') }}
    group by pipeline_id

),

expected as (

    select
        coalesce(e.pipeline_id, q.pipeline_id, a.pipeline_id) as pipeline_id,
        coalesce(e.events, 0) as events,
        coalesce(q.quarantined, 0) as quarantined,
        coalesce(a.alerts, 0) as alerts
    from bronze_events as e
    full outer join bronze_quarantine as q on e.pipeline_id = q.pipeline_id
    full outer join silver_alerts as a
        on coalesce(e.pipeline_id, q.pipeline_id) = a.pipeline_id

),

health as (

    select
        pipeline_id,
        sum(events) as events,
        sum(quarantined) as quarantined,
        sum(alerts) as alerts
    from {{ ref('fct_pipeline_health_daily') }}
    group by pipeline_id

),

final as (

    select
        expected.*,
        health.events as health_events,
        health.quarantined as health_quarantined,
        health.alerts as health_alerts
    from expected
    left join health on expected.pipeline_id = health.pipeline_id
    where coalesce(health.events, -1) != expected.events
        or coalesce(health.quarantined, -1) != expected.quarantined
        or coalesce(health.alerts, -1) != expected.alerts

)

select * from final

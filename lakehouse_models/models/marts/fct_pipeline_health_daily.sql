{{ config(materialized='incremental', incremental_strategy='insert_overwrite',
          partition_by=['activity_date']) }}
with events as (

    select * from {{ ref('stg_events') }}
    where {{ day_window('event_date') }}

),

alerts as (

    select * from {{ ref('stg_alerts') }}
    where {{ day_window('event_date') }}

),

quarantine as (

    select * from {{ ref('stg_quarantine') }}
    where {{ day_window('quarantine_date') }}

),

events_daily as (

    select
        pipeline_id,
        event_date as activity_date,
        max(pipeline_name) as pipeline_name,
        count(*) as events,
        count(distinct event_id) as distinct_events,
        count(distinct ingested_at) as batches,
        max(ingested_at) as last_ingested_at
    from events
    group by pipeline_id, event_date

),

quarantine_daily as (

    select
        pipeline_id,
        quarantine_date as activity_date,
        max(pipeline_name) as pipeline_name,
        count(*) as quarantined
    from quarantine
    group by pipeline_id, quarantine_date

),

alerts_daily as (

    select
        pipeline_id,
        event_date as activity_date,
        max(pipeline_name) as pipeline_name,
        count(*) as alerts,
        count(distinct event_id) as alerted_events
    from alerts
    group by pipeline_id, event_date

),

pipeline_days as (

    select pipeline_id, activity_date, pipeline_name from events_daily
    union
    select pipeline_id, activity_date, pipeline_name from quarantine_daily
    union
    select pipeline_id, activity_date, pipeline_name from alerts_daily

),

days as (

    select
        pipeline_id,
        activity_date,
        max(pipeline_name) as pipeline_name
    from pipeline_days
    group by pipeline_id, activity_date

),

final as (

    select
        {{ surrogate_key(['days.pipeline_id', 'days.activity_date']) }} as pipeline_day_key,
        days.pipeline_id,
        days.pipeline_name,
        days.activity_date,
        coalesce(events_daily.events, 0) as events,
        coalesce(events_daily.distinct_events, 0) as distinct_events,
        coalesce(quarantine_daily.quarantined, 0) as quarantined,
        cast(coalesce(quarantine_daily.quarantined, 0) as double)
            / nullif(coalesce(events_daily.events, 0)
                + coalesce(quarantine_daily.quarantined, 0), 0) as quarantine_rate,
        coalesce(alerts_daily.alerts, 0) as alerts,
        coalesce(alerts_daily.alerted_events, 0) as alerted_events,
        cast(coalesce(alerts_daily.alerted_events, 0) as double)
            / nullif(events_daily.distinct_events, 0) as alert_rate,
        coalesce(events_daily.batches, 0) as batches,
        events_daily.last_ingested_at
    from days
    left join events_daily
        on days.pipeline_id = events_daily.pipeline_id
        and days.activity_date = events_daily.activity_date
    left join quarantine_daily
        on days.pipeline_id = quarantine_daily.pipeline_id
        and days.activity_date = quarantine_daily.activity_date
    left join alerts_daily
        on days.pipeline_id = alerts_daily.pipeline_id
        and days.activity_date = alerts_daily.activity_date

)

select * from final

{{ config(materialized='incremental', incremental_strategy='insert_overwrite',
          partition_by=['alert_date']) }}
with alerts as (

    select * from {{ ref('stg_alerts') }}
    where {{ day_window('event_date') }}

),

hourly as (

    select
        pipeline_id,
        rule_id,
        severity,
        date_trunc('hour', event_time) as alert_hour,
        max(pipeline_name) as pipeline_name,
        count(*) as alerts,
        count(distinct event_id) as alerted_events,
        avg(score) as avg_score,
        max(score) as max_score,
        min(alerted_at) as first_alerted_at,
        max(alerted_at) as last_alerted_at
    from alerts
    group by pipeline_id, rule_id, severity, date_trunc('hour', event_time)

),

final as (

    select
        {{ surrogate_key(['pipeline_id', 'rule_id', 'severity', 'alert_hour']) }} as alert_hour_key,
        pipeline_id,
        pipeline_name,
        rule_id,
        severity,
        alert_hour,
        cast(alert_hour as date) as alert_date,
        alerts,
        alerted_events,
        avg_score,
        max_score,
        first_alerted_at,
        last_alerted_at
    from hourly

)

select * from final

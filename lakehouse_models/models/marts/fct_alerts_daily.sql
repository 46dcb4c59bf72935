{{ config(materialized='incremental', incremental_strategy='insert_overwrite',
          partition_by=['alert_date']) }}
with alerts as (

    select * from {{ ref('stg_alerts') }}
    where {{ day_window('event_date') }}

),

daily as (

    select
        pipeline_id,
        rule_id,
        severity,
        event_date as alert_date,
        max(pipeline_name) as pipeline_name,
        count(*) as alerts,
        count(distinct event_id) as alerted_events,
        avg(score) as avg_score,
        max(score) as max_score,
        min(alerted_at) as first_alerted_at,
        max(alerted_at) as last_alerted_at
    from alerts
    group by pipeline_id, rule_id, severity, event_date

),

final as (

    select
        {{ surrogate_key(['pipeline_id', 'rule_id', 'severity', 'alert_date']) }} as alert_day_key,
        pipeline_id,
        pipeline_name,
        rule_id,
        severity,
        alert_date,
        alerts,
        alerted_events,
        avg_score,
        max_score,
        first_alerted_at,
        last_alerted_at
    from daily

)

select * from final

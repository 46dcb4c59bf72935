{{ config(materialized='incremental', incremental_strategy='insert_overwrite',
          partition_by=['event_date']) }}
with events as (

    select * from {{ ref('stg_events') }}
    where {{ day_window('event_date') }}

),

all_alerts as (

    select * from {{ ref('stg_alerts') }}

),

alerts as (

    select * from all_alerts
    where {{ day_window('event_date') }}

),

events_per_day as (

    select
        pipeline_id,
        event_date,
        count(distinct event_id) as events_seen
    from events
    group by pipeline_id, event_date

),

rules_per_event as (

    select
        pipeline_id,
        event_id,
        count(distinct rule_id) as rules_matched
    from all_alerts
    where event_id in (select event_id from alerts)
    group by pipeline_id, event_id

),

rule_day as (

    select
        alerts.pipeline_id,
        alerts.rule_id,
        alerts.event_date,
        max(alerts.pipeline_name) as pipeline_name,
        max_by(alerts.severity, alerts.rule_version) as severity,
        count(*) as alerts,
        count(distinct alerts.event_id) as alerted_events,
        count(distinct case when rules_per_event.rules_matched > 1
            then alerts.event_id end) as shared_events,
        sum(case when rules_per_event.rules_matched > 1 then 1 else 0 end) as shared_alerts
    from alerts
    inner join rules_per_event
        on alerts.pipeline_id = rules_per_event.pipeline_id
        and alerts.event_id = rules_per_event.event_id
    group by alerts.pipeline_id, alerts.rule_id, alerts.event_date

),

final as (

    select
        {{ surrogate_key(['rule_day.pipeline_id', 'rule_day.rule_id', 'rule_day.event_date']) }}
            as rule_day_key,
        rule_day.pipeline_id,
        rule_day.pipeline_name,
        rule_day.rule_id,
        rule_day.severity,
        rule_day.event_date,
        coalesce(events_per_day.events_seen, 0) as events_seen,
        rule_day.alerts,
        rule_day.alerted_events,
        cast(rule_day.alerted_events as double)
            / nullif(events_per_day.events_seen, 0) as hit_rate,
        rule_day.shared_alerts,
        rule_day.shared_events,
        cast(rule_day.shared_events as double)
            / nullif(rule_day.alerted_events, 0) as overlap_rate
    from rule_day
    left join events_per_day
        on rule_day.pipeline_id = events_per_day.pipeline_id
        and rule_day.event_date = events_per_day.event_date

)

select * from final

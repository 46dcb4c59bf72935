with events as (

    select * from {{ ref('stg_events') }}

),

alerts as (

    select * from {{ ref('stg_alerts') }}

),

event_keys as (

    select distinct
        pipeline_id,
        event_id,
        key_value
    from events
    where key_value is not null

),

entity_events as (

    select
        pipeline_id,
        key_value,
        max(pipeline_name) as pipeline_name,
        count(*) as events,
        count(distinct event_id) as distinct_events,
        min(event_time) as first_seen_at,
        max(event_time) as last_seen_at,
        max(ingested_at) as last_ingested_at
    from events
    where key_value is not null
    group by pipeline_id, key_value

),

entity_alerts as (

    select
        event_keys.pipeline_id,
        event_keys.key_value,
        count(*) as alerts,
        count(distinct alerts.event_id) as alerted_events,
        count(distinct alerts.rule_id) as rules_matched,
        max({{ severity_rank('alerts.severity') }}) as max_severity_rank,
        max(alerts.score) as max_score,
        min(alerts.alerted_at) as first_alerted_at,
        max(alerts.alerted_at) as last_alerted_at
    from alerts
    inner join event_keys
        on alerts.pipeline_id = event_keys.pipeline_id
        and alerts.event_id = event_keys.event_id
    group by event_keys.pipeline_id, event_keys.key_value

),

final as (

    select
        {{ surrogate_key(['entity_events.pipeline_id', 'entity_events.key_value']) }}
            as entity_key,
        entity_events.pipeline_id,
        entity_events.pipeline_name,
        entity_events.key_value,
        entity_events.events,
        entity_events.distinct_events,
        coalesce(entity_alerts.alerts, 0) as alerts,
        coalesce(entity_alerts.alerted_events, 0) as alerted_events,
        coalesce(entity_alerts.rules_matched, 0) as rules_matched,
        {{ severity_of_rank('entity_alerts.max_severity_rank') }} as max_severity,
        entity_alerts.max_score,
        entity_events.first_seen_at,
        entity_events.last_seen_at,
        entity_events.last_ingested_at,
        entity_alerts.first_alerted_at,
        entity_alerts.last_alerted_at
    from entity_events
    left join entity_alerts
        on entity_events.pipeline_id = entity_alerts.pipeline_id
        and entity_events.key_value = entity_alerts.key_value

)

select * from final

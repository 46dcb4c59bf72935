-- events_seen of every rule-day equals the distinct events bronze holds for that pipeline-day.
-- meta.dagster.ref: an asset check of fct_rule_effectiveness in Dagster (a singular test over
-- several relations would otherwise only be logged as an observation).
{{ config(meta={'dagster': {'ref': {'name': 'fct_rule_effectiveness'}}}) }}
with bronze as (

    select pipeline_id, event_date, count(distinct event_id) as events
    from {{ source('bronze', 'all_events') }}
    group by pipeline_id, event_date

),

rules as (

    select * from {{ ref('fct_rule_effectiveness') }}

),

final as (

    select rules.rule_day_key, rules.events_seen, bronze.events
    from rules
    left join bronze
        on rules.pipeline_id = bronze.pipeline_id
        and rules.event_date = bronze.event_date
    where rules.events_seen != coalesce(bronze.events, 0)

)

select * from final

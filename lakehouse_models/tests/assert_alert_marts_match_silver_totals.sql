-- Every alert of silver is counted once in the hourly, daily and rule marts, per pipeline.
-- meta.dagster.ref: an asset check of fct_alerts_daily in Dagster (a singular test over
-- several relations would otherwise only be logged as an observation).
{{ config(meta={'dagster': {'ref': {'name': 'fct_alerts_daily'}}}) }}
with silver as (

    select pipeline_id, count(*) as alerts
    from {{ source('silver', 'all_alerts') }}
    group by pipeline_id

),

hourly as (

    select pipeline_id, sum(alerts) as alerts from {{ ref('fct_alerts_hourly') }}
    group by pipeline_id

),

daily as (

    select pipeline_id, sum(alerts) as alerts from {{ ref('fct_alerts_daily') }}
    group by pipeline_id

),

rules as (

    select pipeline_id, sum(alerts) as alerts from {{ ref('fct_rule_effectiveness') }}
    group by pipeline_id

),

final as (

    select
        silver.pipeline_id,
        silver.alerts as silver_alerts,
        hourly.alerts as hourly_alerts,
        daily.alerts as daily_alerts,
        rules.alerts as rule_alerts
    from silver
    left join hourly on silver.pipeline_id = hourly.pipeline_id
    left join daily on silver.pipeline_id = daily.pipeline_id
    left join rules on silver.pipeline_id = rules.pipeline_id
    where hourly.alerts is null or hourly.alerts != silver.alerts
        or daily.alerts is null or daily.alerts != silver.alerts
        or rules.alerts is null or rules.alerts != silver.alerts

)

select * from final

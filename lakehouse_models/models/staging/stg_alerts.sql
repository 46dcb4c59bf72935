with source as (

    select * from {{ source('silver', 'all_alerts') }}

),

final as (

    select
        cast(alert_id as string) as alert_id,
        cast(pipeline_id as int) as pipeline_id,
        cast(pipeline_name as string) as pipeline_name,
        cast(rule_id as int) as rule_id,
        cast(rule_version as int) as rule_version,
        cast(severity as string) as severity,
        cast(score as double) as score,
        cast(rule_description as string) as rule_description,
        cast(event_id as string) as event_id,
        cast(event_time as timestamp) as event_time,
        cast(event_time as date) as event_date,
        cast(alert_timestamp as timestamp) as alerted_at,
        cast(transaction_data as string) as event_json,
        cast(kafka_partition as int) as kafka_partition,
        cast(kafka_offset as bigint) as kafka_offset
    from source

)

select * from final

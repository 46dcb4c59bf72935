with source as (

    select * from {{ source('bronze', 'all_events') }}

),

final as (

    select
        cast(pipeline_id as int) as pipeline_id,
        cast(pipeline_name as string) as pipeline_name,
        cast(event_id as string) as event_id,
        cast(key_value as string) as key_value,
        cast(event_time as timestamp) as event_time,
        cast(event_date as date) as event_date,
        cast(kafka_timestamp as timestamp) as kafka_timestamp,
        cast(kafka_partition as int) as kafka_partition,
        cast(kafka_offset as bigint) as kafka_offset,
        cast(ingested_at as timestamp) as ingested_at,
        cast(schema_version as int) as schema_version,
        cast(event_json as string) as event_json
    from source

)

select * from final

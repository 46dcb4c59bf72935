with source as (

    select * from {{ source('bronze', 'all_quarantine') }}

),

final as (

    select
        cast(pipeline_id as int) as pipeline_id,
        cast(pipeline_name as string) as pipeline_name,
        cast(raw_value as string) as raw_text,
        cast(reason as string) as reason,
        cast(topic as string) as topic,
        cast(kafka_partition as int) as kafka_partition,
        cast(kafka_offset as bigint) as kafka_offset,
        cast(kafka_timestamp as timestamp) as kafka_timestamp,
        cast(quarantined_at as timestamp) as quarantined_at,
        cast(quarantine_date as date) as quarantine_date
    from source

)

select * from final

{{ config(materialized='incremental', incremental_strategy='insert_overwrite',
          partition_by=['quarantine_date']) }}
with quarantine as (

    select * from {{ ref('stg_quarantine') }}
    where {{ day_window('quarantine_date') }}

),

reasons as (

    select
        pipeline_id,
        quarantine_date,
        reason,
        max(pipeline_name) as pipeline_name,
        count(*) as quarantined,
        min(quarantined_at) as first_quarantined_at,
        max(quarantined_at) as last_quarantined_at,
        min(raw_text) as sample_raw_text
    from quarantine
    group by pipeline_id, quarantine_date, reason

),

final as (

    select
        {{ surrogate_key(['pipeline_id', 'quarantine_date', 'reason']) }} as reason_day_key,
        pipeline_id,
        pipeline_name,
        quarantine_date,
        trim(split(reason, ':')[0]) as reason_category,
        reason,
        quarantined,
        cast(quarantined as double)
            / sum(quarantined) over (partition by pipeline_id, quarantine_date)
            as share_of_day,
        first_quarantined_at,
        last_quarantined_at,
        substring(sample_raw_text, 1, 500) as sample_raw_text
    from reasons

)

select * from final

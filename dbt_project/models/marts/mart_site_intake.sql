-- Per site: what its deliveries brought in, from the intake counts ingestion records per file
-- (restricted/intake, read without file names). Files by status; rows and administrations of
-- its exports (withdrawal files and REDCap data dictionaries hold no administrations), which
-- conserve: offered = accepted + quarantined + not administered; the events those exports
-- produced; consent withdrawals (one per client, so small counts are suppressed like
-- mart_site_quality's); and the logical dates (delivery nights, not participant dates) of the
-- first and last delivery. Every configured site has a row, with zeros before its first file.
with sites as (
    select site_id from {{ ref('stg_consortium__sites') }}
    union
    select site_id from {{ ref('stg_intake__files') }}
),

per_site as (
    select
        site_id,
        count(*) as files_delivered,
        count(*) filter (where status = 'ingested') as files_ingested,
        count(*) filter (where status = 'rejected') as files_rejected,
        sum(rows_in) filter (where kind = 'export') as rows_in,
        sum(administrations_offered) filter (where kind = 'export') as administrations_offered,
        sum(administrations_accepted) filter (where kind = 'export')
            as administrations_accepted,
        sum(administrations_quarantined) filter (where kind = 'export')
            as administrations_quarantined,
        sum(administrations_not_administered) filter (where kind = 'export')
            as administrations_not_administered,
        sum(quarantine_records) as quarantine_records,
        sum(events_recorded) filter (where kind = 'export') as events_recorded,
        sum(events_amended) filter (where kind = 'export') as events_amended,
        sum(events_retracted) filter (where kind = 'export') as events_retracted,
        sum(events_withdrawn) as events_withdrawn,
        min(logical_date) as first_logical_date,
        max(logical_date) as last_logical_date
    from {{ ref('stg_intake__files') }}
    group by site_id
),

counted as (
    select
        s.site_id,
        coalesce(p.files_delivered, 0) as files_delivered,
        coalesce(p.files_ingested, 0) as files_ingested,
        coalesce(p.files_rejected, 0) as files_rejected,
        coalesce(p.rows_in, 0) as rows_in,
        coalesce(p.administrations_offered, 0) as administrations_offered,
        coalesce(p.administrations_accepted, 0) as administrations_accepted,
        coalesce(p.administrations_quarantined, 0) as administrations_quarantined,
        coalesce(p.administrations_not_administered, 0) as administrations_not_administered,
        coalesce(p.quarantine_records, 0) as quarantine_records,
        coalesce(p.events_recorded, 0) as events_recorded,
        coalesce(p.events_amended, 0) as events_amended,
        coalesce(p.events_retracted, 0) as events_retracted,
        coalesce(p.events_withdrawn, 0) as events_withdrawn,
        p.first_logical_date,
        p.last_logical_date
    from sites as s
    left join per_site as p on s.site_id = p.site_id
)

select
    site_id,
    cast({{ var('small_cell_threshold') }} as integer) as small_cell_threshold,
    cast(files_delivered as integer) as files_delivered,
    cast(files_ingested as integer) as files_ingested,
    cast(files_rejected as integer) as files_rejected,
    cast(rows_in as integer) as rows_in,
    cast(administrations_offered as integer) as administrations_offered,
    cast(administrations_accepted as integer) as administrations_accepted,
    cast(administrations_quarantined as integer) as administrations_quarantined,
    cast(administrations_not_administered as integer) as administrations_not_administered,
    cast(
        administrations_offered - administrations_accepted - administrations_quarantined
        - administrations_not_administered as integer
    ) as administrations_unaccounted,
    cast(quarantine_records as integer) as quarantine_records,
    cast(events_recorded as integer) as events_recorded,
    cast(events_amended as integer) as events_amended,
    cast(events_retracted as integer) as events_retracted,
    cast(case when {{ publishable('events_withdrawn') }} then events_withdrawn end as integer)
        as events_withdrawn,
    cast(first_logical_date as date) as first_logical_date,
    cast(last_logical_date as date) as last_logical_date,
    case when {{ publishable('events_withdrawn') }} then '' else 'events_withdrawn' end
        as suppressed_cells
from counted

-- One row per delivery (site, kind and the file's SHA-256, never its name) with the counts
-- ingestion recorded for it: the same bytes delivered by two sites are two deliveries. A
-- delivery appears once: should a night that crashed between the intake and the event commits
-- leave a row that a later night's batch repeats, one row is kept, deterministically (the latest
-- logical date, then the greatest batch id).
select
    site_id,
    source_sha256,
    batch_id,
    logical_date,
    kind,
    status,
    rows_in,
    administrations_offered,
    administrations_accepted,
    administrations_quarantined,
    administrations_not_administered,
    quarantine_records,
    events_recorded,
    events_amended,
    events_retracted,
    events_withdrawn,
    unchanged
from {{ source('intake', 'files') }}
qualify row_number() over (
    partition by site_id, kind, source_sha256 order by logical_date desc, batch_id desc
) = 1

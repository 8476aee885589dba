-- The event log as delivered: one row per event of any type, envelope columns kept.
-- item_missing (why items are missing: a site's missing code reason per item, or null) is
-- null for logs written before it existed: the source plugin reads those as null.
select
    event_id,
    event_type,
    site_id,
    site_seq,
    client_pid,
    therapist_pid,
    session_number,
    session_date,
    instrument,
    rater_role,
    items,
    item_missing,
    ending_type,
    supersedes_event_id,
    reason,
    source_file,
    source_sha256,
    source_row,
    batch_id,
    actor,
    logical_date
from {{ source('event_log', 'events') }}

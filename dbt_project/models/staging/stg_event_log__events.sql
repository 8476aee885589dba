-- The event log as delivered: one row per event of any type, envelope columns kept.
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

-- The event log as delivered: one row per event, envelope columns renamed for use downstream.
select
    event_id,
    event_type,
    site_id,
    client_pid,
    therapist_pid,
    session_number,
    session_date,
    instrument,
    rater_role,
    items,
    source_file,
    source_sha256,
    source_row,
    batch_id,
    logical_date
from {{ source('event_log', 'events') }}

-- Calendar dates of sessions: built, and so released, only when the consortium file says
-- `release: {calendar_dates: true}` (warehouse/build.py passes it as var
-- release_calendar_dates). Every other mart carries relative time (session_day) instead.
{{ config(enabled=var('release_calendar_dates', false)) }}
select
    site_id,
    client_pid,
    cast(session_number as integer) as session_number,
    -- The administrations of one session normally share a date; should they not, the earliest.
    cast(min(session_date) as date) as session_date,
    cast(min(session_day) as integer) as session_day,
    cast(count(*) as integer) as n_administrations
from {{ ref('int_administrations_scored') }}
group by site_id, client_pid, session_number
-- A site that made the session date optional (required_fields) may send a session without one:
-- it has no calendar row.
having min(session_date) is not null

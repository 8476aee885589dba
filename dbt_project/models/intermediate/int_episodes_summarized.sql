-- One row per client episode. The event log has no episode id yet, so an episode is a client at
-- a site. A session counts as attended when at least one administration was recorded for it
-- (the log records questionnaires, not appointments). The episode's therapist is the one of
-- its first session with a therapist; ending type is not delivered yet (issue 3), so it and
-- the flag that needs it are null.
with sessions as (
    select
        site_id,
        client_pid,
        session_number,
        min(session_day) as session_day,
        -- One therapist per session; min() only makes the choice deterministic.
        min(therapist_pid) as therapist_pid
    from {{ ref('int_administrations_scored') }}
    group by site_id, client_pid, session_number
),

episodes as (
    select
        site_id,
        client_pid,
        arg_min(therapist_pid, session_number) filter (where therapist_pid is not null)
            as therapist_pid,
        count(distinct therapist_pid) as n_therapists,
        count(*) as n_sessions_attended,
        min(session_number) as first_session,
        max(session_number) as last_session,
        max(session_day) as last_session_day
    from sessions
    group by site_id, client_pid
)

select
    site_id,
    client_pid,
    therapist_pid,
    n_therapists,
    n_sessions_attended,
    first_session,
    last_session,
    last_session_day,
    cast(null as varchar) as ending_type,
    n_sessions_attended >= {{ var('finished_treatment_min_sessions') }} as finished_treatment,
    n_sessions_attended < {{ var('finished_treatment_min_sessions') }} as dropout_early,
    cast(null as boolean) as dropout_unplanned,
    n_sessions_attended < {{ var('dropout_dose') }} as dropout_below_dose
from episodes

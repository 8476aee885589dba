-- One row per client episode. The event log has no episode id yet, so an episode is a client at
-- a site. A session counts as attended when at least one administration was recorded for it
-- (the log records questionnaires, not appointments). The episode's therapist is the one of
-- its first session with a therapist. Its ending type is the one coded on the latest session
-- that has one ('planned' / 'unplanned' / 'open', from sites that deliver an ending column, in
-- any format); null when no session has one, and then dropout_unplanned is null too (unknown,
-- not false). An open episode is still running: not an unplanned dropout (false), and whether
-- it is a finished course, an early dropout or below the dose is not decided yet (null), so it
-- counts as neither a completer nor a dropout.
with sessions as (
    select
        site_id,
        client_pid,
        session_number,
        min(session_day) as session_day,
        -- One therapist per session; min() only makes the choice deterministic.
        min(therapist_pid) as therapist_pid,
        -- One source row per session, so its administrations agree; max() is deterministic
        -- (and, should a long table's lines disagree, an ending wins over 'open').
        max(ending_type) as ending_type
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
        max(session_day) as last_session_day,
        arg_max(ending_type, session_number) filter (where ending_type is not null)
            as ending_type
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
    ending_type,
    case when not is_open
        then n_sessions_attended >= {{ var('finished_treatment_min_sessions') }}
    end as finished_treatment,
    case when not is_open
        then n_sessions_attended < {{ var('finished_treatment_min_sessions') }}
    end as dropout_early,
    ending_type = 'unplanned' as dropout_unplanned,
    case when not is_open then n_sessions_attended < {{ var('dropout_dose') }} end
        as dropout_below_dose
from (select *, coalesce(ending_type = 'open', false) as is_open from episodes)

-- Change over the episode per client and outcome measure: first scored session against the
-- last. change is signed so that positive = better, using the registry's direction.
with scored as (
    select site_id, client_pid, instrument, session_number, total
    from {{ ref('fct_outcome_session') }}
    where total is not null
),

episodes as (
    select
        site_id,
        client_pid,
        instrument,
        count(*) as n_scored_sessions,
        min(session_number) as baseline_session,
        max(session_number) as final_session,
        arg_min(total, session_number) as baseline_score,
        arg_max(total, session_number) as final_score
    from scored
    group by site_id, client_pid, instrument
),

signed as (
    select
        e.*,
        r.reliable_change,
        case
            when e.n_scored_sessions < 2 then null
            when r.direction = 'higher_is_worse' then e.baseline_score - e.final_score
            else e.final_score - e.baseline_score
        end as change
    from episodes as e
    inner join {{ ref('stg_registry__instruments') }} as r on e.instrument = r.instrument
)

select
    site_id,
    client_pid,
    instrument,
    cast(n_scored_sessions as integer) as n_scored_sessions,
    cast(baseline_session as integer) as baseline_session,
    cast(final_session as integer) as final_session,
    cast(baseline_score as double) as baseline_score,
    cast(case when n_scored_sessions >= 2 then final_score end as double) as final_score,
    cast(change as double) as change,
    case when change is not null and reliable_change is not null
        then change >= reliable_change end as reliable_improvement,
    case when change is not null and reliable_change is not null
        then change <= -reliable_change end as reliable_deterioration
from signed

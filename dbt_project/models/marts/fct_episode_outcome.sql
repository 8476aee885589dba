-- Change over the episode per client and outcome measure (first scored session against the
-- last; positive = better), with reliable change, Jacobson-Truax RCI and category, caseness at
-- both ends and sudden gain / loss counts (rules: int_outcome_episodes_compared).
select
    site_id,
    client_pid,
    instrument,
    cast(n_scored_sessions as integer) as n_scored_sessions,
    cast(baseline_session as integer) as baseline_session,
    cast(final_session as integer) as final_session,
    {{ as_score('baseline_score') }} as baseline_score,
    {{ as_score('final_score') }} as final_score,
    {{ as_score('change') }} as change,
    reliable_improvement,
    reliable_deterioration,
    cast(jt_rci as double) as jt_rci,
    jt_category,
    cast(jt_s_diff as double) as jt_s_diff,
    cast(jt_cutoff as double) as jt_cutoff,
    caseness_start,
    caseness_end,
    cast(n_sudden_gains as integer) as n_sudden_gains,
    cast(n_sudden_losses as integer) as n_sudden_losses
from {{ ref('int_outcome_episodes_compared') }}

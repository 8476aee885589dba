-- One row per sudden gain or sudden loss (Tang & DeRubeis 1999; rules and parameters:
-- int_outcome_intervals_tested).
select
    site_id,
    client_pid,
    instrument,
    kind,
    cast(pregain_session as integer) as pregain_session,
    cast(postgain_session as integer) as postgain_session,
    {{ as_score('pregain_score') }} as pregain_score,
    {{ as_score('postgain_score') }} as postgain_score,
    {{ as_score('magnitude') }} as magnitude,
    cast(relative_magnitude as double) as relative_magnitude,
    cast(n_pre as integer) as n_pre,
    cast(n_post as integer) as n_post,
    cast(mean_pre as double) as mean_pre,
    cast(mean_post as double) as mean_post,
    cast(pooled_sd as double) as pooled_sd,
    cast(t_crit as double) as t_crit,
    cast(abs_cutoff as double) as abs_cutoff
from {{ ref('int_outcome_intervals_tested') }}
where kind is not null

-- One row per client x alliance measure x rater x outcome measure with both an early alliance
-- (by var early_alliance_rule) and a change score: the input of every alliance-outcome
-- correlation, with the baseline score (for the baseline-residualized r) and the therapist.
select
    a.site_id,
    a.client_pid,
    e.therapist_pid,
    a.instrument as alliance_instrument,
    a.rater_role,
    o.instrument as outcome_instrument,
    a.early_alliance,
    a.early_alliance_pomp,
    o.baseline_score,
    o.change
from {{ ref('int_early_alliance') }} as a
inner join {{ ref('int_outcome_episodes_compared') }} as o
    on a.site_id = o.site_id and a.client_pid = o.client_pid
inner join {{ ref('int_episodes_summarized') }} as e
    on a.site_id = e.site_id and a.client_pid = e.client_pid
where a.early_alliance is not null and o.change is not null

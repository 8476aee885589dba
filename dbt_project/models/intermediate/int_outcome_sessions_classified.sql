-- One row per outcome administration with the registry's severity band, caseness and
-- direction: the classification every outcome rule downstream (episodes, NHS Talking
-- Therapies, sudden gains) reads, so each rule is written once. The total is snapped to the
-- registry's response grid (item_decimals; macros/grid.sql) before it meets a cutoff or a band
-- edge, so floating-point error in a sum cannot move a score across one; every rule
-- downstream reads this snapped total.
with scored as (
    select
        a.* replace ({{ snap_to_grid('a.total', 'r.item_decimals') }} as total)
    from {{ ref('int_administrations_scored') }} as a
    inner join {{ ref('stg_registry__instruments') }} as r on a.instrument = r.instrument
    where a.construct = 'outcome'
)

select
    s.event_id,
    s.site_id,
    s.client_pid,
    s.therapist_pid,
    s.session_number,
    s.session_day,
    s.instrument,
    s.direction,
    s.total,
    s.items_answered,
    s.is_prorated,
    b.band as severity_band,
    {{ meets_cutoff('s.total', 'r.caseness_operator', 'r.caseness_threshold') }} as at_caseness,
    r.nhs_tt_role
from scored as s
inner join {{ ref('stg_registry__instruments') }} as r on s.instrument = r.instrument
left join {{ ref('stg_registry__severity_bands') }} as b
    on s.instrument = b.instrument
    and s.total >= b.min_score
    and (b.max_score_exclusive is null or s.total < b.max_score_exclusive)

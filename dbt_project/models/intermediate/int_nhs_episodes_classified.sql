-- NHS Talking Therapies outcomes per episode, from the registry's depression and anxiety
-- measures (nhs_talking_therapies: PHQ-9 and GAD-7) scored at the same session (a paired
-- score). Thresholds (caseness, reliable change) and direction come from the registry.
--   caseness at start: either measure at caseness at the first paired score;
--   evaluated only for a finished course (var finished_treatment_min_sessions) with at least
--   two paired scores; first against last paired score:
--   reliable improvement: either measure improved by its threshold, neither worsened by it;
--   reliable deterioration: either measure worsened by its threshold, neither improved by it
--     (so a mixed course, one better and one worse, is neither);
--   recovery (only for those at caseness at start): below caseness on both at the end;
--   reliable recovery: recovery and reliable improvement.
-- Improvements are snapped to each measure's response grid (registry item_decimals;
-- macros/grid.sql) before they meet a threshold, so a change of exactly the threshold counts.
with scores as (
    select
        o.site_id,
        o.client_pid,
        o.session_number,
        o.nhs_tt_role,
        o.total,
        o.at_caseness,
        r.direction,
        r.reliable_change,
        r.item_decimals
    from {{ ref('int_outcome_sessions_classified') }} as o
    inner join {{ ref('stg_registry__instruments') }} as r on o.instrument = r.instrument
    where o.nhs_tt_role is not null and o.total is not null
),

paired as (
    select
        d.site_id,
        d.client_pid,
        d.session_number,
        d.total as dep_total,
        d.at_caseness as dep_caseness,
        {{ improvement_sign('d.direction') }} as dep_sign,
        d.reliable_change as dep_threshold,
        d.item_decimals as dep_decimals,
        a.total as anx_total,
        a.at_caseness as anx_caseness,
        {{ improvement_sign('a.direction') }} as anx_sign,
        a.reliable_change as anx_threshold,
        a.item_decimals as anx_decimals
    from scores as d
    inner join scores as a
        on d.site_id = a.site_id
        and d.client_pid = a.client_pid
        and d.session_number = a.session_number
        and d.nhs_tt_role = 'depression'
        and a.nhs_tt_role = 'anxiety'
),

ends as (
    select
        site_id,
        client_pid,
        count(*) as n_paired,
        arg_min(dep_caseness, session_number) or arg_min(anx_caseness, session_number)
            as caseness_start,
        arg_max(dep_caseness, session_number) as dep_caseness_end,
        arg_max(anx_caseness, session_number) as anx_caseness_end,
        {{ snap_to_grid(
            'any_value(dep_sign) * (arg_min(dep_total, session_number)'
            ~ ' - arg_max(dep_total, session_number))',
            'any_value(dep_decimals)') }} as dep_improvement,
        {{ snap_to_grid(
            'any_value(anx_sign) * (arg_min(anx_total, session_number)'
            ~ ' - arg_max(anx_total, session_number))',
            'any_value(anx_decimals)') }} as anx_improvement,
        any_value(dep_threshold) as dep_threshold,
        any_value(anx_threshold) as anx_threshold
    from paired
    group by site_id, client_pid
),

changes as (
    select
        *,
        dep_improvement >= dep_threshold or anx_improvement >= anx_threshold as any_improved,
        -dep_improvement >= dep_threshold or -anx_improvement >= anx_threshold as any_worsened
    from ends
),

classified as (
    select
        e.site_id,
        e.client_pid,
        coalesce(c.n_paired, 0) as nhs_paired_sessions,
        c.caseness_start as nhs_caseness_start,
        e.finished_treatment and coalesce(c.n_paired, 0) >= 2 as evaluable,
        c.any_improved,
        c.any_worsened,
        not c.dep_caseness_end and not c.anx_caseness_end as below_caseness_end
    from {{ ref('int_episodes_summarized') }} as e
    left join changes as c on e.site_id = c.site_id and e.client_pid = c.client_pid
),

outcomes as (
    select
        site_id,
        client_pid,
        nhs_paired_sessions,
        nhs_caseness_start,
        case when evaluable then any_improved and not any_worsened end
            as nhs_reliable_improvement,
        case when evaluable then any_worsened and not any_improved end
            as nhs_reliable_deterioration,
        case when evaluable and nhs_caseness_start then below_caseness_end end as nhs_recovery
    from classified
)

select
    *,
    case when nhs_recovery is not null then nhs_recovery and nhs_reliable_improvement end
        as nhs_reliable_recovery
from outcomes

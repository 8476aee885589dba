-- Change over the episode per client and outcome measure: the first scored session against the
-- last, signed so that positive = better (registry direction), with
--   * the registry's reliable-change threshold (reliable_improvement / _deterioration);
--   * Jacobson & Truax (1991): S_diff = sqrt(2) * SD_pre * sqrt(1 - r_xx) with r_xx and SD_pre
--     from the registry (SD_pre 'sample' = SD of the baseline scores of this measure's
--     episodes with a change score, across the consortium), RCI = change / S_diff, reliable
--     when |RCI| > var jt_rci_critical; the cutoff is the registry's jt_cutoff, dysfunctional
--     on the jt_cutoff_operator side. recovered = reliable improvement from the dysfunctional
--     into the functional range; harmed = reliable deterioration from functional into
--     dysfunctional; improved / deteriorated = reliable change without that crossing;
--     unchanged otherwise;
--   * caseness at the first and the last scored session, and counts of sudden gains / losses.
-- The change is snapped to the registry's response grid (item_decimals; macros/grid.sql) before
-- it meets the reliable-change threshold: ORS 3.2 -> 8.2 is 4.999999999999999 in binary
-- floating point and must count as the reliable change of 5 it is.
{%- set crit = var('jt_rci_critical') %}
with scored as (
    select site_id, client_pid, instrument, session_number, total, at_caseness
    from {{ ref('int_outcome_sessions_classified') }}
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
        arg_max(total, session_number) as last_score,
        arg_min(at_caseness, session_number) as caseness_start,
        arg_max(at_caseness, session_number) as last_caseness
    from scored
    group by site_id, client_pid, instrument
),

signed as (
    select
        e.*,
        case when e.n_scored_sessions >= 2 then e.last_score end as final_score,
        case when e.n_scored_sessions >= 2 then e.last_caseness end as caseness_end,
        case when e.n_scored_sessions >= 2
            then {{ snap_to_grid(
                improvement_sign('r.direction') ~ ' * (e.baseline_score - e.last_score)',
                'r.item_decimals') }}
        end as change,
        r.reliable_change,
        r.jt_reliability,
        r.jt_sd_pre,
        r.jt_cutoff,
        r.jt_cutoff_operator
    from episodes as e
    inner join {{ ref('stg_registry__instruments') }} as r on e.instrument = r.instrument
),

sample_sd as (
    select instrument, {{ exact_stddev_samp('baseline_score') }} as sd_baseline
    from signed
    where change is not null
    group by instrument
),

jacobson_truax as (
    select
        s.*,
        sqrt(2) * coalesce(s.jt_sd_pre, d.sd_baseline) * sqrt(1 - s.jt_reliability) as jt_s_diff,
        {{ meets_cutoff('s.baseline_score', 's.jt_cutoff_operator', 's.jt_cutoff') }}
            as dysfunctional_start,
        {{ meets_cutoff('s.final_score', 's.jt_cutoff_operator', 's.jt_cutoff') }}
            as dysfunctional_end
    from signed as s
    left join sample_sd as d on s.instrument = d.instrument
),

with_rci as (
    select
        *,
        case when change is not null and jt_s_diff > 0 then change / jt_s_diff end as jt_rci
    from jacobson_truax
),

sudden as (
    select
        site_id,
        client_pid,
        instrument,
        count(*) filter (where kind = 'gain') as n_sudden_gains,
        count(*) filter (where kind = 'loss') as n_sudden_losses
    from {{ ref('int_outcome_intervals_tested') }}
    group by site_id, client_pid, instrument
)

select
    c.site_id,
    c.client_pid,
    c.instrument,
    c.n_scored_sessions,
    c.baseline_session,
    c.final_session,
    c.baseline_score,
    c.final_score,
    c.change,
    case when c.change is not null and c.reliable_change is not null
        then c.change >= c.reliable_change end as reliable_improvement,
    case when c.change is not null and c.reliable_change is not null
        then c.change <= -c.reliable_change end as reliable_deterioration,
    c.jt_s_diff,
    c.jt_cutoff,
    c.jt_rci,
    case
        when c.jt_rci is null then null
        when c.jt_rci > {{ crit }} and c.dysfunctional_start and not c.dysfunctional_end
            then 'recovered'
        when c.jt_rci > {{ crit }} then 'improved'
        when c.jt_rci < -{{ crit }} and not c.dysfunctional_start and c.dysfunctional_end
            then 'harmed'
        when c.jt_rci < -{{ crit }} then 'deteriorated'
        else 'unchanged'
    end as jt_category,
    c.caseness_start,
    c.caseness_end,
    -- Null when no interval of the episode could be tested (too few scored sessions).
    g.n_sudden_gains,
    g.n_sudden_losses
from with_rci as c
left join sudden as g
    on c.site_id = g.site_id
    and c.client_pid = g.client_pid
    and c.instrument = g.instrument

-- Sudden gains and losses (Tang & DeRubeis 1999, as the R package suddengains applies them)
-- between consecutive scored sessions n (pre-gain) and n+1 (post-gain) of one outcome measure:
--   1. improvement >= the absolute cutoff (var sudden_gain_abs_cutoff, or the registry's
--      reliable_change when that var is null);
--   2. improvement >= var sudden_gain_rel_cutoff x the pre-gain score;
--   3. mean(n-2..n) - mean(n+1..n+3), signed as improvement, > t_crit x pooled SD of the two
--      windows, t_crit by the scores available (var sudden_gain_t_crit: 3 + 3 -> 2.776,
--      one missing -> 3.182, one missing each side -> 4.303); fewer than 2 on a side: no test.
-- A loss mirrors all three. Improvement is signed by the registry's direction. One row per
-- interval that could be tested (at least 2 scores on each side); kind is 'gain', 'loss' or
-- null (neither), so a client with no testable interval is told apart from one without gains.
-- The improvement and the relative cutoff are snapped to the registry's response grid
-- (item_decimals; macros/grid.sql) before criteria 1 and 2 compare them: ORS 15.4 -> 20.4 is
-- 4.999999999999998 in binary floating point and must meet a cutoff of 5.
{%- set abs_cutoff = var('sudden_gain_abs_cutoff') %}
{%- set t_crit = var('sudden_gain_t_crit') %}
with scores as (
    select site_id, client_pid, instrument, session_number, total
    from {{ ref('int_outcome_sessions_classified') }}
    where total is not null
),

intervals as (
    select
        pre.site_id,
        pre.client_pid,
        pre.instrument,
        pre.session_number as pregain_session,
        post.session_number as postgain_session,
        pre.total as pregain_score,
        post.total as postgain_score
    from scores as pre
    inner join scores as post
        on pre.site_id = post.site_id
        and pre.client_pid = post.client_pid
        and pre.instrument = post.instrument
        and post.session_number = pre.session_number + 1
),

windows as (
    select
        i.site_id,
        i.client_pid,
        i.instrument,
        i.pregain_session,
        i.postgain_session,
        i.pregain_score,
        i.postgain_score,
        count(w.total) filter (where w.session_number <= i.pregain_session) as n_pre,
        count(w.total) filter (where w.session_number >= i.postgain_session) as n_post,
        {{ exact_avg('w.total', 'w.session_number <= i.pregain_session') }} as mean_pre,
        {{ exact_avg('w.total', 'w.session_number >= i.postgain_session') }} as mean_post,
        {{ exact_var_samp('w.total', 'w.session_number <= i.pregain_session') }} as var_pre,
        {{ exact_var_samp('w.total', 'w.session_number >= i.postgain_session') }} as var_post
    from intervals as i
    inner join scores as w
        on i.site_id = w.site_id
        and i.client_pid = w.client_pid
        and i.instrument = w.instrument
        and w.session_number between i.pregain_session - 2 and i.postgain_session + 2
    group by all
),

tested as (
    select
        w.*,
        {{ snap_to_grid(
            improvement_sign('r.direction') ~ ' * (w.pregain_score - w.postgain_score)',
            'r.item_decimals') }} as improvement,
        {{ snap_to_grid(
            var('sudden_gain_rel_cutoff') ~ ' * w.pregain_score', 'r.item_decimals') }}
            as rel_cutoff,
        {{ improvement_sign('r.direction') }} * (w.mean_pre - w.mean_post) as mean_improvement,
        sqrt(
            ((w.n_pre - 1) * w.var_pre + (w.n_post - 1) * w.var_post) / (w.n_pre + w.n_post - 2)
        ) as pooled_sd,
        case w.n_pre + w.n_post - 2
            {%- for df, t in t_crit.items() %}
            when {{ df }} then {{ t }}
            {%- endfor %}
        end as t_crit,
        {{ abs_cutoff if abs_cutoff is not none else 'r.reliable_change' }} as abs_cutoff
    from windows as w
    inner join {{ ref('stg_registry__instruments') }} as r on w.instrument = r.instrument
    where w.n_pre >= 2 and w.n_post >= 2
),

classified as (
    select
        *,
        case
            when improvement >= abs_cutoff
                and improvement >= rel_cutoff
                and mean_improvement > t_crit * pooled_sd
                then 'gain'
            when -improvement >= abs_cutoff
                and -improvement >= rel_cutoff
                and -mean_improvement > t_crit * pooled_sd
                then 'loss'
        end as kind
    from tested
)

select
    site_id,
    client_pid,
    instrument,
    kind,
    pregain_session,
    postgain_session,
    pregain_score,
    postgain_score,
    abs(improvement) as magnitude,
    case when pregain_score <> 0 then abs(improvement) / pregain_score end as relative_magnitude,
    n_pre,
    n_post,
    mean_pre,
    mean_post,
    pooled_sd,
    t_crit,
    abs_cutoff
from classified

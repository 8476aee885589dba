-- One row per alliance administration with what session-by-session monitoring needs: POMP, the
-- instrument's own concern rule (registry alliance_concern; null where it has none), and
-- ruptures against the client's own series (same measure and rater):
--   rupture at t  <=> total_t <= client mean - k * client SD   (sample SD over scored sessions)
--   repaired      <=> a later session within var rupture_repair_window reaches >= client mean
-- for the lenient (k1) and strict (k2) k. A series shorter than var rupture_min_sessions is not
-- evaluated (null); one without variation has no rupture. A rupture at the client's last scored
-- session cannot show a repair: repaired is null there.
-- The drop from the previous session is snapped to the registry's response grid (item_decimals)
-- before it meets concern_drop_from_previous: on a one-decimal VAS, 32.8 - 31.8 is
-- 0.9999999999999964 in binary floating point, and a drop of exactly 1 point must flag.
{%- set k1 = var('rupture_k_lenient') %}
{%- set k2 = var('rupture_k_strict') %}
{%- set window = var('rupture_repair_window') %}
with scored as (
    select
        a.event_id,
        a.site_id,
        a.client_pid,
        a.therapist_pid,
        a.session_number,
        a.session_day,
        a.instrument,
        a.rater_role,
        a.total,
        a.goal,
        a.task,
        a.bond,
        a.items_answered,
        a.is_prorated,
        r.total_min,
        r.total_max,
        r.concern_below,
        r.concern_drop_from_previous,
        r.item_decimals
    from {{ ref('int_administrations_scored') }} as a
    inner join {{ ref('stg_registry__instruments') }} as r on a.instrument = r.instrument
    where a.construct = 'alliance'
),

series as (
    select
        *,
        count(total) over client_series as n_scored,
        {{ exact_avg('total', over='over client_series') }} as client_mean,
        {{ exact_stddev_samp('total', over='over client_series') }} as client_sd,
        last_value(total ignore nulls) over (
            partition by site_id, client_pid, instrument, rater_role
            order by session_number
            rows between unbounded preceding and 1 preceding
        ) as previous_total
    from scored
    window client_series as (partition by site_id, client_pid, instrument, rater_role)
),

ruptures as (
    select
        *,
        {%- for name, k in [('rupture_k1', k1), ('rupture_k2', k2)] %}
        case
            when total is null or n_scored < {{ var('rupture_min_sessions') }} then null
            when client_sd = 0 then false
            else total <= client_mean - {{ k }} * client_sd
        end as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
    from series
),

later as (
    -- For each administration: did a later scored session come back to the client's mean
    -- within the repair window, and is there any later scored session at all?
    select
        s.event_id,
        count(l.total) as n_later_scored,
        coalesce(
            bool_or(l.total >= s.client_mean)
                filter (where l.session_number <= s.session_number + {{ window }}),
            false
        ) as returned_to_mean
    from ruptures as s
    left join ruptures as l
        on s.site_id = l.site_id
        and s.client_pid = l.client_pid
        and s.instrument = l.instrument
        and s.rater_role = l.rater_role
        and l.session_number > s.session_number
        and l.total is not null
    group by s.event_id
)

select
    r.event_id,
    r.site_id,
    r.client_pid,
    r.therapist_pid,
    r.session_number,
    r.session_day,
    r.instrument,
    r.rater_role,
    r.total,
    r.goal,
    r.task,
    r.bond,
    r.items_answered,
    r.is_prorated,
    {{ pomp('r.total', 'r.total_min', 'r.total_max') }} as pomp_total,
    case
        when r.total is null then null
        when r.concern_below is null and r.concern_drop_from_previous is null then null
        when r.concern_below is null and r.previous_total is null then null
        else coalesce(r.total < r.concern_below, false)
            or coalesce(
                {{ snap_to_grid('r.previous_total - r.total', 'r.item_decimals') }}
                    >= r.concern_drop_from_previous,
                false
            )
    end as alliance_concern,
    r.n_scored,
    r.client_mean,
    r.client_sd,
    r.rupture_k1,
    r.rupture_k2,
    {%- for k in ['k1', 'k2'] %}
    case
        when not coalesce(r.rupture_{{ k }}, false) then null
        when l.n_later_scored = 0 then null
        else l.returned_to_mean
    end as repaired_{{ k }}{{ ',' if not loop.last }}
    {%- endfor %}
from ruptures as r
inner join later as l on r.event_id = l.event_id

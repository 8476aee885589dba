-- Total and subscale scores per administration, interpreting the registry's scoring vocabulary
-- (ingestion/registry.py; no instrument is named here):
--   missing_method  what a blank item becomes while blanks stay within max_missing
--                   (subscale_max_missing for a subscale score):
--     none                   nothing: max_missing is 0, so any blank means no score (SRS, ORS);
--     prorate_mean           the mean of the answered items: score = mean x items (PHQ-9);
--     subscale_mean_rounded  the answered mean of its own subscale, rounded half up to the
--                            response grid (OQ-45.2), then summed like an answer;
--   scoring         how the (filled) items make the score:
--     sum   sum of the items; a sum over a complete (or filled) form is rounded to the grid's
--           decimals, so VAS sums like 9.3 + 8.7 + 7.5 + 9.0 are exactly 34.5;
--     mean  score_multiplier x sum / items answered (CORE-10 clinical score: 10 x mean).
--   rounding        'half_up' rounds the score half up to the response grid's step (a
--                   consortium protocol: PHQ-9 prorated 6.43 -> 6); 'none' keeps it.
-- max_missing, missing_method and rounding are the rules in force: the registry's defaults with
-- the consortium's scoring_policy applied (warehouse/dbt_sources.py), as intake applied them.
-- Subscale scores follow the same rules over the subscale's items. goal / task / bond are
-- Bordin's three alliance dimensions; subscale_scores carries every subscale by its name.
with registry as (
    select
        instrument,
        n_items,
        scoring,
        score_multiplier,
        missing_method,
        max_missing,
        subscale_max_missing,
        item_step,
        item_decimals,
        rounding
    from {{ ref('stg_registry__instruments') }}
),

subscale_sizes as (
    select instrument, subscale, count(*) as n_items
    from {{ ref('stg_registry__items') }}
    where subscale is not null
    group by instrument, subscale
),

filled as (
    select
        k.event_id,
        k.instrument,
        k.subscale,
        k.keyed_value,
        case
            when k.keyed_value is not null then k.keyed_value
            when r.missing_method = 'subscale_mean_rounded' and k.subscale is not null
                then round(
                    round(
                        {{ exact_avg('k.keyed_value',
                            over='over (partition by k.event_id, k.subscale)') }}
                        / r.item_step
                    ) * r.item_step,
                    r.item_decimals
                )
        end as filled_value
    from {{ ref('int_item_responses_keyed') }} as k
    inner join registry as r on k.instrument = r.instrument
),

totals as (
    select
        f.event_id,
        f.instrument,
        count(f.keyed_value) as items_answered,
        {{ exact_avg('f.keyed_value') }} as answered_mean,
        count(f.filled_value) as items_filled,
        {{ exact_sum('f.filled_value') }} as filled_sum
    from filled as f
    group by f.event_id, f.instrument
),

subscales as (
    select
        f.event_id,
        f.subscale,
        case
            when s.n_items - count(f.keyed_value) <= r.subscale_max_missing
                and count(f.keyed_value) > 0
                then {{ policy_round(registry_score(
                    'r.scoring', 'r.score_multiplier', 'r.missing_method', 'r.item_decimals',
                    's.n_items', exact_avg('f.keyed_value'), 'count(f.filled_value)',
                    exact_sum('f.filled_value')), 'r.rounding', 'r.item_step', 'r.item_decimals') }}
        end as subscale_score
    from filled as f
    inner join subscale_sizes as s on f.instrument = s.instrument and f.subscale = s.subscale
    inner join registry as r on f.instrument = r.instrument
    group by
        f.event_id,
        f.subscale,
        s.n_items,
        r.subscale_max_missing,
        r.scoring,
        r.score_multiplier,
        r.missing_method,
        r.item_decimals,
        r.rounding,
        r.item_step
),

subscales_wide as (
    select
        event_id,
        max(subscale_score) filter (where subscale = 'goal') as goal,
        max(subscale_score) filter (where subscale = 'task') as task,
        max(subscale_score) filter (where subscale = 'bond') as bond,
        map(
            list(subscale order by subscale), list(subscale_score order by subscale)
        ) as subscale_scores
    from subscales
    group by event_id
),

scorable as (
    select
        t.*,
        r.n_items - t.items_answered <= r.max_missing and t.items_answered > 0 as is_scorable
    from totals as t
    inner join registry as r on t.instrument = r.instrument
)

select
    c.event_id,
    c.site_id,
    c.client_pid,
    c.therapist_pid,
    c.session_number,
    c.session_date,
    -- Relative time (days since the client's first session at this site, any instrument):
    -- releases carry this instead of calendar dates.
    cast(date_diff(
        'day', min(c.session_date) over (partition by c.site_id, c.client_pid), c.session_date
    ) as integer) as session_day,
    c.instrument,
    c.rater_role,
    c.ending_type,
    r.construct,
    r.direction,
    t.items_answered,
    t.is_scorable,
    t.items_answered < r.n_items as is_prorated,
    case
        when t.is_scorable then {{ policy_round(registry_score(
            'r.scoring', 'r.score_multiplier', 'r.missing_method', 'r.item_decimals',
            'r.n_items', 't.answered_mean', 't.items_filled', 't.filled_sum'),
            'r.rounding', 'r.item_step', 'r.item_decimals') }}
    end as total,
    s.goal,
    s.task,
    s.bond,
    s.subscale_scores
from {{ ref('int_responses_current') }} as c
inner join scorable as t on c.event_id = t.event_id
inner join {{ ref('stg_registry__instruments') }} as r on c.instrument = r.instrument
left join subscales_wide as s on c.event_id = s.event_id

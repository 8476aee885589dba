-- Total and subscale scores per administration, by the registry's scoring and missing-item
-- rules: a score is the sum of keyed items; with blanks, the mean of answered items times the
-- item count (prorating), only while blanks stay within the instrument's limit.
with item_counts as (
    select instrument, subscale, count(*) as n_items
    from {{ ref('stg_registry__items') }}
    where subscale is not null
    group by instrument, subscale
),

totals as (
    select
        k.event_id,
        k.instrument,
        count(k.keyed_value) as items_answered,
        sum(k.keyed_value) as answered_sum,
        avg(k.keyed_value) as answered_mean
    from {{ ref('int_item_responses_keyed') }} as k
    group by k.event_id, k.instrument
),

subscales as (
    select
        k.event_id,
        k.subscale,
        case
            when c.n_items - count(k.keyed_value) <= r.subscale_max_missing
                and count(k.keyed_value) > 0
                then avg(k.keyed_value) * c.n_items
        end as subscale_score
    from {{ ref('int_item_responses_keyed') }} as k
    inner join item_counts as c on k.instrument = c.instrument and k.subscale = c.subscale
    inner join {{ ref('stg_registry__instruments') }} as r on k.instrument = r.instrument
    group by k.event_id, k.subscale, c.n_items, r.subscale_max_missing
),

subscales_wide as (
    select
        event_id,
        max(subscale_score) filter (where subscale = 'goal') as goal,
        max(subscale_score) filter (where subscale = 'task') as task,
        max(subscale_score) filter (where subscale = 'bond') as bond
    from subscales
    group by event_id
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
    r.n_items - t.items_answered <= r.max_missing and t.items_answered > 0 as is_scorable,
    t.items_answered < r.n_items as is_prorated,
    case
        when r.n_items - t.items_answered <= r.max_missing and t.items_answered > 0
            then t.answered_mean * r.n_items
    end as total,
    s.goal,
    s.task,
    s.bond
from {{ ref('int_responses_current') }} as c
inner join totals as t on c.event_id = t.event_id
inner join {{ ref('stg_registry__instruments') }} as r on c.instrument = r.instrument
left join subscales_wide as s on c.event_id = s.event_id

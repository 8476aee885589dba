-- One row per item of each current administration, reverse-keyed by the registry:
-- keyed = item_min + item_max - raw for reversed items (WAI-S 8 - x, HAq-II 7 - x, CORE-10 and
-- OQ-45.2 4 - x), rounded to the response grid's decimals so that a reversed decimal (VAS) value
-- stays on the grid instead of picking up binary noise.
with exploded as (
    select
        event_id,
        instrument,
        unnest(items) as raw_value,
        unnest(generate_series(1, len(items))) as item_number
    from {{ ref('int_responses_current') }}
)

select
    e.event_id,
    e.instrument,
    e.item_number,
    e.raw_value,
    case
        when i.is_reversed then round(r.item_min + r.item_max - e.raw_value, r.item_decimals)
        else e.raw_value
    end as keyed_value,
    i.subscale
from exploded as e
inner join {{ ref('stg_registry__items') }} as i
    on e.instrument = i.instrument and e.item_number = i.item_number
inner join {{ ref('stg_registry__instruments') }} as r
    on e.instrument = r.instrument

-- One row per outcome administration with its score, severity band and caseness.
with scored as (
    select * from {{ ref('int_administrations_scored') }} where construct = 'outcome'
)

select
    s.site_id,
    s.client_pid,
    cast(s.session_number as integer) as session_number,
    s.instrument,
    cast(s.total as double) as total,
    b.band as severity_band,
    case
        when s.total is null or r.caseness_operator is null then null
        when r.caseness_operator = '>=' then s.total >= r.caseness_threshold
        when r.caseness_operator = '<' then s.total < r.caseness_threshold
    end as at_caseness,
    cast(s.items_answered as integer) as items_answered,
    s.is_prorated as prorated
from scored as s
inner join {{ ref('stg_registry__instruments') }} as r on s.instrument = r.instrument
left join {{ ref('stg_registry__severity_bands') }} as b
    on s.instrument = b.instrument
    and s.total >= b.min_score
    and (b.max_score_exclusive is null or s.total < b.max_score_exclusive)

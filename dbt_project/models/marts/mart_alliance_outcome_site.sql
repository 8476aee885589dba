-- Per site: Pearson r between early alliance (site's primary alliance measure, client rater)
-- and improvement on the site's primary outcome measure, with its Fisher-z confidence interval.
with paired as (
    select
        s.site_id,
        s.primary_alliance,
        s.primary_outcome,
        a.early_alliance,
        o.change
    from {{ ref('stg_consortium__sites') }} as s
    inner join {{ ref('int_early_alliance') }} as a
        on s.site_id = a.site_id
        and a.instrument = s.primary_alliance
        and a.rater_role = 'client'
    inner join {{ ref('fct_episode_outcome') }} as o
        on a.site_id = o.site_id
        and a.client_pid = o.client_pid
        and o.instrument = s.primary_outcome
    where o.change is not null
),

per_site as (
    select
        s.site_id,
        s.primary_alliance as alliance_instrument,
        s.primary_outcome as outcome_instrument,
        count(p.change) as n,
        -- r is undefined with fewer than 3 clients or without variance (DuckDB gives NaN).
        case
            when count(p.change) >= 3 and not isnan(corr(p.early_alliance, p.change))
                then corr(p.early_alliance, p.change)
        end as r
    from {{ ref('stg_consortium__sites') }} as s
    left join paired as p on s.site_id = p.site_id
    group by s.site_id, s.primary_alliance, s.primary_outcome
),

with_z as (
    select
        *,
        case
            when n >= {{ var('min_clients_for_correlation') }} and abs(r) < 1 then atanh(r)
        end as fisher_z,
        case
            when n >= {{ var('min_clients_for_correlation') }} then 1 / sqrt(n - 3)
        end as se_z
    from per_site
)

select
    site_id,
    alliance_instrument,
    outcome_instrument,
    cast(n as integer) as n,
    cast(r as double) as r,
    cast(fisher_z as double) as fisher_z,
    cast(se_z as double) as se_z,
    cast(tanh(fisher_z - {{ var('ci_z') }} * se_z) as double) as ci_low,
    cast(tanh(fisher_z + {{ var('ci_z') }} * se_z) as double) as ci_high
from with_z

-- Per site x alliance measure x outcome measure x rater role: Pearson r between early alliance
-- (var early_alliance_rule) and improvement (positive = better), and the baseline-residualized
-- r: the partial correlation given the baseline score, i.e. the correlation of alliance and
-- improvement after regressing each on baseline. Fisher z with SE = 1 / sqrt(n - 3) (raw) and
-- 1 / sqrt(n - 4) (one covariate). Every site has its primary row (the configured primary
-- measures, rater var primary_rater_role), even without data.
with pairs as (
    select * from {{ ref('int_alliance_outcome_pairs_joined') }}
),

sites as (
    select site_id, primary_alliance, primary_outcome from {{ ref('stg_consortium__sites') }}
),

combinations as (
    select
        site_id,
        primary_alliance as alliance_instrument,
        primary_outcome as outcome_instrument,
        '{{ var("primary_rater_role") }}' as rater_role
    from sites
    union
    select distinct site_id, alliance_instrument, outcome_instrument, rater_role from pairs
),

moments as (
    select
        c.site_id,
        c.alliance_instrument,
        c.outcome_instrument,
        c.rater_role,
        count(p.change) as n,
        -- r is undefined with fewer than 3 clients or without variance (DuckDB gives NaN).
        {{ defined_corr('p.early_alliance', 'p.change', 3) }} as r,
        {{ defined_corr('p.early_alliance', 'p.baseline_score', 3) }} as r_alliance_baseline,
        {{ defined_corr('p.change', 'p.baseline_score', 3) }} as r_change_baseline
    from combinations as c
    left join pairs as p
        on c.site_id = p.site_id
        and c.alliance_instrument = p.alliance_instrument
        and c.outcome_instrument = p.outcome_instrument
        and c.rater_role = p.rater_role
    group by c.site_id, c.alliance_instrument, c.outcome_instrument, c.rater_role
),

partial as (
    select
        *,
        case
            when n >= 4 and abs(r_alliance_baseline) < 1 and abs(r_change_baseline) < 1
                then (r - r_alliance_baseline * r_change_baseline)
                    / sqrt((1 - r_alliance_baseline ^ 2) * (1 - r_change_baseline ^ 2))
        end as r_residualized
    from moments
),

with_z as (
    select
        p.*,
        s.site_id is not null as is_primary,
        case
            when p.n >= {{ var('min_clients_for_correlation') }} and abs(p.r) < 1 then atanh(p.r)
        end as fisher_z,
        case
            when p.n >= {{ var('min_clients_for_correlation') }} then 1 / sqrt(p.n - 3)
        end as se_z,
        case
            when p.n >= {{ var('min_clients_for_residualized') }} and abs(p.r_residualized) < 1
                then atanh(p.r_residualized)
        end as fisher_z_residualized,
        case
            when p.n >= {{ var('min_clients_for_residualized') }} then 1 / sqrt(p.n - 4)
        end as se_z_residualized
    from partial as p
    left join sites as s
        on p.site_id = s.site_id
        and p.alliance_instrument = s.primary_alliance
        and p.outcome_instrument = s.primary_outcome
        and p.rater_role = '{{ var("primary_rater_role") }}'
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
    cast(tanh(fisher_z + {{ var('ci_z') }} * se_z) as double) as ci_high,
    rater_role,
    is_primary,
    '{{ early_alliance_rule() }}' as early_alliance_rule,
    cast(r_residualized as double) as r_residualized,
    cast(fisher_z_residualized as double) as fisher_z_residualized,
    cast(se_z_residualized as double) as se_z_residualized,
    cast(tanh(fisher_z_residualized - {{ var('ci_z') }} * se_z_residualized) as double)
        as ci_low_residualized,
    cast(tanh(fisher_z_residualized + {{ var('ci_z') }} * se_z_residualized) as double)
        as ci_high_residualized
from with_z

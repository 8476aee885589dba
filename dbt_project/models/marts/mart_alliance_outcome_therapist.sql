-- Per therapist with at least var min_clients_per_therapist clients on the site's primary pair
-- (primary alliance and outcome measure, primary rater): mean early alliance, mean improvement
-- and n; and per site, the between-therapist correlation of those means and the pooled
-- within-therapist correlation (client deviations from their therapist's means), because the
-- alliance-outcome link has a therapist part (Baldwin, Wampold & Imel 2007). Site columns
-- repeat on each of the site's therapist rows.
with pairs as (
    select p.*
    from {{ ref('int_alliance_outcome_pairs_joined') }} as p
    inner join {{ ref('stg_consortium__sites') }} as s
        on p.site_id = s.site_id
        and p.alliance_instrument = s.primary_alliance
        and p.outcome_instrument = s.primary_outcome
    where p.rater_role = '{{ var("primary_rater_role") }}' and p.therapist_pid is not null
),

therapists as (
    select
        site_id,
        therapist_pid,
        alliance_instrument,
        outcome_instrument,
        count(*) as n_clients,
        {{ exact_avg('early_alliance') }} as mean_early_alliance,
        {{ exact_avg('early_alliance_pomp') }} as mean_early_alliance_pomp,
        {{ exact_avg('change') }} as mean_improvement
    from pairs
    group by site_id, therapist_pid, alliance_instrument, outcome_instrument
    having count(*) >= {{ var('min_clients_per_therapist') }}
),

between_therapists as (
    select
        site_id,
        count(*) as n_therapists,
        {{ defined_corr('mean_early_alliance', 'mean_improvement', 3) }} as between_r
    from therapists
    group by site_id
),

within_therapists as (
    select
        p.site_id,
        {{ defined_corr(
            'p.early_alliance - t.mean_early_alliance', 'p.change - t.mean_improvement', 3
        ) }} as within_r
    from pairs as p
    inner join therapists as t on p.site_id = t.site_id and p.therapist_pid = t.therapist_pid
    group by p.site_id
)

select
    t.site_id,
    t.therapist_pid,
    t.alliance_instrument,
    t.outcome_instrument,
    '{{ early_alliance_rule() }}' as early_alliance_rule,
    cast(t.n_clients as integer) as n_clients,
    cast(t.mean_early_alliance as double) as mean_early_alliance,
    cast(t.mean_early_alliance_pomp as double) as mean_early_alliance_pomp,
    cast(t.mean_improvement as double) as mean_improvement,
    cast(b.n_therapists as integer) as site_n_therapists,
    cast(b.between_r as double) as site_between_therapist_r,
    cast(w.within_r as double) as site_within_therapist_r
from therapists as t
inner join between_therapists as b on t.site_id = b.site_id
left join within_therapists as w on t.site_id = w.site_id

-- Per site: the KPIs a consortium compares sites on (clients, finished treatments, NHS Talking
-- Therapies recovery / reliable improvement / reliable deterioration, dropout by each
-- definition, mean early alliance, rupture rates) and data-quality counts, with small cells
-- suppressed (macros/disclosure.sql, checked against every denominator up the chain below):
-- a hidden count is null and named in suppressed_cells, and every rate or mean that would
-- reveal it is null too. Quarantine counts come from the quarantine store (without values).
{%- set cells = [
    ('n_clients', none),
    ('n_finished_treatment', 'n_clients'),
    ('n_dropout_early', 'n_clients'),
    ('n_dropout_below_dose', 'n_clients'),
    ('n_dropout_unplanned', 'n_clients'),
    ('n_nhs_paired', 'n_finished_treatment'),
    ('n_nhs_recovery_eligible', 'n_nhs_paired'),
    ('n_nhs_recovered', 'n_nhs_recovery_eligible'),
    ('n_nhs_reliable_improvement', 'n_nhs_paired'),
    ('n_nhs_reliable_deterioration', 'n_nhs_paired'),
    ('n_early_alliance', 'n_clients'),
    ('n_rupture_evaluable', 'n_clients'),
    ('n_clients_rupture_k1', 'n_rupture_evaluable'),
    ('n_clients_rupture_k2', 'n_rupture_evaluable'),
    ('n_alliance_administrations', none),
    ('n_outcome_administrations', none),
    ('n_unscorable_administrations', 'n_administrations'),
    ('n_prorated_administrations', 'n_administrations'),
    ('n_quarantined', none),
] %}
{%- set rates = [
    ('dropout_early_rate', 'n_dropout_early', 'n_clients'),
    ('dropout_below_dose_rate', 'n_dropout_below_dose', 'n_clients'),
    ('dropout_unplanned_rate', 'n_dropout_unplanned', 'n_clients'),
    ('nhs_recovery_rate', 'n_nhs_recovered', 'n_nhs_recovery_eligible'),
    ('nhs_reliable_improvement_rate', 'n_nhs_reliable_improvement', 'n_nhs_paired'),
    ('nhs_reliable_deterioration_rate', 'n_nhs_reliable_deterioration', 'n_nhs_paired'),
    ('rupture_rate_k1', 'n_clients_rupture_k1', 'n_rupture_evaluable'),
    ('rupture_rate_k2', 'n_clients_rupture_k2', 'n_rupture_evaluable'),
] %}
{%- set parents = {} %}
{%- for count, parent in cells %}{% do parents.update({count: parent}) %}{% endfor %}
{%- set rule = early_alliance_rule() %}
with episodes as (
    select
        s.site_id,
        count(e.client_pid) as n_clients,
        count(e.client_pid) filter (where e.finished_treatment) as n_finished_treatment,
        count(e.client_pid) filter (where e.dropout_early) as n_dropout_early,
        count(e.client_pid) filter (where e.dropout_below_dose) as n_dropout_below_dose,
        -- Unknown, not zero, at a site none of whose episodes has an ending type.
        case when count(e.ending_type) > 0
            then count(e.client_pid) filter (where e.dropout_unplanned)
        end as n_dropout_unplanned,
        count(e.nhs_reliable_improvement) as n_nhs_paired,
        count(e.nhs_recovery) as n_nhs_recovery_eligible,
        count(e.client_pid) filter (where e.nhs_recovery) as n_nhs_recovered,
        count(e.client_pid) filter (where e.nhs_reliable_improvement)
            as n_nhs_reliable_improvement,
        count(e.client_pid) filter (where e.nhs_reliable_deterioration)
            as n_nhs_reliable_deterioration,
        count(e.early_alliance_{{ rule }}) as n_early_alliance,
        {{ exact_avg('e.early_alliance_' ~ rule) }} as mean_early_alliance,
        {{ exact_avg('e.early_alliance_' ~ rule ~ '_pomp') }} as mean_early_alliance_pomp,
        count(e.n_ruptures_k1) as n_rupture_evaluable,
        count(e.client_pid) filter (where e.n_ruptures_k1 > 0) as n_clients_rupture_k1,
        count(e.client_pid) filter (where e.n_ruptures_k2 > 0) as n_clients_rupture_k2
    from {{ ref('stg_consortium__sites') }} as s
    left join {{ ref('fct_episode') }} as e on s.site_id = e.site_id
    group by s.site_id
),

administrations as (
    select
        site_id,
        count(*) filter (where construct = 'alliance') as n_alliance_administrations,
        count(*) filter (where construct = 'outcome') as n_outcome_administrations,
        count(*) filter (where not is_scorable) as n_unscorable_administrations,
        count(*) filter (where is_prorated and is_scorable) as n_prorated_administrations
    from {{ ref('int_administrations_scored') }}
    group by site_id
),

quarantined as (
    select site_id, count(*) as n_quarantined
    from {{ ref('stg_quarantine__records') }}
    group by site_id
),

raw as (
    select
        e.*,
        coalesce(a.n_alliance_administrations, 0) as n_alliance_administrations,
        coalesce(a.n_outcome_administrations, 0) as n_outcome_administrations,
        coalesce(a.n_alliance_administrations, 0) + coalesce(a.n_outcome_administrations, 0)
            as n_administrations,
        coalesce(a.n_unscorable_administrations, 0) as n_unscorable_administrations,
        coalesce(a.n_prorated_administrations, 0) as n_prorated_administrations,
        coalesce(q.n_quarantined, 0) as n_quarantined
    from episodes as e
    left join administrations as a on e.site_id = a.site_id
    left join quarantined as q on e.site_id = q.site_id
),

shown as (
    select
        *,
        {%- for count, parent in cells %}
        {{ publishable(count, ancestors_of(count, parents)) }}
        {%- if count in ('n_nhs_reliable_improvement', 'n_nhs_reliable_deterioration') %}
            -- improved + deteriorated + neither = paired: hide both if "neither" is small.
            and not {{ is_small(
                'n_nhs_paired - n_nhs_reliable_improvement - n_nhs_reliable_deterioration') }}
        {%- endif %} as show_{{ count }},
        {%- endfor %}
        true as show_n_administrations
    from raw
)

select
    site_id,
    cast({{ var('small_cell_threshold') }} as integer) as small_cell_threshold,
    {%- for count, parent in cells %}
    cast(case when show_{{ count }} then {{ count }} end as integer) as {{ count }},
    {%- endfor %}
    {%- for rate, count, parent in rates %}
    cast(case when show_{{ count }} and show_{{ parent }} and {{ parent }} > 0
        then {{ count }} / {{ parent }} end as double) as {{ rate }},
    {%- endfor %}
    cast(case when show_n_early_alliance then mean_early_alliance end as double)
        as mean_early_alliance,
    cast(case when show_n_early_alliance then mean_early_alliance_pomp end as double)
        as mean_early_alliance_pomp,
    '{{ rule }}' as early_alliance_rule,
    concat_ws(
        ',',
        {%- for count, parent in cells %}
        case when not show_{{ count }} and {{ count }} is not null then '{{ count }}' end
        {{- ',' if not loop.last }}
        {%- endfor %}
    ) as suppressed_cells
from shown

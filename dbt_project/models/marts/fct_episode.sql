-- One row per client episode (a client at a site): attendance, dropout by each definition,
-- early alliance by both rules on the site's primary alliance measure (primary rater), rupture
-- and repair counts on that series, and the NHS Talking Therapies classification.
with alliance as (
    select
        a.site_id,
        a.client_pid,
        count(a.rupture_k1) as n_rupture_sessions_evaluated,
        count(*) filter (where a.rupture_k1) as n_ruptures_k1,
        count(*) filter (where a.rupture_k2) as n_ruptures_k2,
        count(*) filter (where a.repaired_k1) as n_repaired_k1,
        count(*) filter (where a.repaired_k2) as n_repaired_k2
    from {{ ref('int_alliance_sessions_flagged') }} as a
    inner join {{ ref('stg_consortium__sites') }} as s
        on a.site_id = s.site_id and a.instrument = s.primary_alliance
    where a.rater_role = '{{ var("primary_rater_role") }}'
    group by a.site_id, a.client_pid
)

select
    e.site_id,
    e.client_pid,
    e.therapist_pid,
    cast(e.n_therapists as integer) as n_therapists,
    cast(e.n_sessions_attended as integer) as n_sessions_attended,
    cast(e.first_session as integer) as first_session,
    cast(e.last_session as integer) as last_session,
    cast(e.last_session_day as integer) as last_session_day,
    e.ending_type,
    e.finished_treatment,
    e.dropout_early,
    e.dropout_unplanned,
    e.dropout_below_dose,
    s.primary_alliance as alliance_instrument,
    cast(ea.early_alliance_mean as double) as early_alliance_mean,
    cast(ea.early_alliance_mean_pomp as double) as early_alliance_mean_pomp,
    {{ as_score('ea.early_alliance_session') }} as early_alliance_session,
    {{ as_score('ea.early_alliance_session_pomp') }} as early_alliance_session_pomp,
    -- Counts only where the series could be evaluated (var rupture_min_sessions).
    {%- for column in ['n_ruptures_k1', 'n_ruptures_k2', 'n_repaired_k1', 'n_repaired_k2'] %}
    cast(case when al.n_rupture_sessions_evaluated > 0 then al.{{ column }} end as integer)
        as {{ column }},
    {%- endfor %}
    cast(n.nhs_paired_sessions as integer) as nhs_paired_sessions,
    n.nhs_caseness_start,
    n.nhs_recovery,
    n.nhs_reliable_improvement,
    n.nhs_reliable_deterioration,
    n.nhs_reliable_recovery
from {{ ref('int_episodes_summarized') }} as e
inner join {{ ref('stg_consortium__sites') }} as s on e.site_id = s.site_id
left join {{ ref('int_early_alliance') }} as ea
    on e.site_id = ea.site_id
    and e.client_pid = ea.client_pid
    and ea.instrument = s.primary_alliance
    and ea.rater_role = '{{ var("primary_rater_role") }}'
left join alliance as al on e.site_id = al.site_id and e.client_pid = al.client_pid
left join {{ ref('int_nhs_episodes_classified') }} as n
    on e.site_id = n.site_id and e.client_pid = n.client_pid

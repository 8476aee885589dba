-- Early alliance per client, alliance measure and rater, by both rules in use: the mean total
-- over sessions 1..N and session N alone (N = var early_alliance_last_session), each also as
-- POMP. early_alliance is the one var early_alliance_rule picks, so no mart repeats the rule.
{%- set last = var('early_alliance_last_session') %}
with early as (
    select
        site_id,
        client_pid,
        instrument,
        rater_role,
        {{ exact_avg('total') }} as early_alliance_mean,
        max(total) filter (where session_number = {{ last }}) as early_alliance_session,
        count(total) as early_sessions_scored
    from {{ ref('int_administrations_scored') }}
    where construct = 'alliance'
        and session_number <= {{ last }}
        and total is not null
    group by site_id, client_pid, instrument, rater_role
)

select
    e.site_id,
    e.client_pid,
    e.instrument,
    e.rater_role,
    e.early_alliance_{{ early_alliance_rule() }} as early_alliance,
    e.early_sessions_scored,
    e.early_alliance_mean,
    e.early_alliance_session,
    {{ pomp('e.early_alliance_' ~ early_alliance_rule(), 'r.total_min', 'r.total_max') }}
        as early_alliance_pomp,
    {{ pomp('e.early_alliance_mean', 'r.total_min', 'r.total_max') }} as early_alliance_mean_pomp,
    {{ pomp('e.early_alliance_session', 'r.total_min', 'r.total_max') }}
        as early_alliance_session_pomp,
    '{{ early_alliance_rule() }}' as early_alliance_rule
from early as e
inner join {{ ref('stg_registry__instruments') }} as r on e.instrument = r.instrument

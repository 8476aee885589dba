-- Current state, replayed from the log: per natural key (site, client, session, instrument,
-- rater role) the latest version in the site's event order; a retracted latest version drops
-- the administration, and clients who withdrew consent (or were erased) drop out entirely.
-- Ordering uses only logged content (site_seq), never wall-clock time.
with response_versions as (
    select *
    from {{ ref('stg_event_log__events') }}
    where event_type in ('response_recorded', 'response_amended', 'response_retracted')
    qualify row_number() over (
        partition by site_id, client_pid, session_number, instrument, rater_role
        order by site_seq desc
    ) = 1
),

closed_clients as (
    select distinct site_id, client_pid
    from {{ ref('stg_event_log__events') }}
    where event_type in ('consent_withdrawn', 'client_erased')
)

select v.*
from response_versions as v
where v.event_type <> 'response_retracted'
    and not exists (
        select 1
        from closed_clients as c
        where c.site_id = v.site_id and c.client_pid = v.client_pid
    )

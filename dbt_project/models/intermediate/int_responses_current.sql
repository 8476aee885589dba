-- Current state: the latest recorded version of each administration's natural key
-- (site, client, session, instrument, rater role). Ordering uses only logged content, never
-- wall-clock time, so replaying the same log always selects the same rows.
select *
from {{ ref('stg_event_log__events') }}
where event_type = 'response_recorded'
qualify row_number() over (
    partition by site_id, client_pid, session_number, instrument, rater_role
    order by logical_date desc, source_file desc, source_row desc, event_id desc
) = 1

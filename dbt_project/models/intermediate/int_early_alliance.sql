-- Early alliance per client, alliance measure and rater: the mean total over sessions
-- 1..var('early_alliance_last_session').
select
    site_id,
    client_pid,
    instrument,
    rater_role,
    avg(total) as early_alliance,
    count(total) as early_sessions_scored
from {{ ref('int_administrations_scored') }}
where construct = 'alliance'
    and session_number <= {{ var('early_alliance_last_session') }}
    and total is not null
group by site_id, client_pid, instrument, rater_role

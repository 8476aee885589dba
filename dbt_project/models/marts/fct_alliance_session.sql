-- One row per alliance administration: total and Bordin's three subscales, POMP, the
-- instrument's concern rule, ruptures and repairs against the client's own series, and
-- relative time (see int_alliance_sessions_flagged for the rules).
select
    site_id,
    client_pid,
    therapist_pid,
    cast(session_number as integer) as session_number,
    instrument,
    rater_role,
    {{ as_score('total') }} as total,
    {{ as_score('goal') }} as goal,
    {{ as_score('task') }} as task,
    {{ as_score('bond') }} as bond,
    cast(items_answered as integer) as items_answered,
    is_prorated as prorated,
    {{ as_score('pomp_total') }} as pomp_total,
    alliance_concern,
    rupture_k1,
    rupture_k2,
    repaired_k1,
    repaired_k2,
    cast(session_day as integer) as session_day
from {{ ref('int_alliance_sessions_flagged') }}

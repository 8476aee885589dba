-- One row per outcome administration: total prorated by the instrument's missing-item rule,
-- severity band, caseness and direction (see int_outcome_sessions_classified).
select
    site_id,
    client_pid,
    cast(session_number as integer) as session_number,
    instrument,
    {{ as_score('total') }} as total,
    severity_band,
    at_caseness,
    cast(items_answered as integer) as items_answered,
    is_prorated as prorated,
    direction,
    cast(session_day as integer) as session_day
from {{ ref('int_outcome_sessions_classified') }}

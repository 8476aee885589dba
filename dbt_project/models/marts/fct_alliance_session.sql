-- One row per alliance administration with its total and Bordin's three subscales.
select
    site_id,
    client_pid,
    therapist_pid,
    cast(session_number as integer) as session_number,
    instrument,
    rater_role,
    cast(total as double) as total,
    cast(goal as double) as goal,
    cast(task as double) as task,
    cast(bond as double) as bond,
    cast(items_answered as integer) as items_answered,
    is_prorated as prorated
from {{ ref('int_administrations_scored') }}
where construct = 'alliance'

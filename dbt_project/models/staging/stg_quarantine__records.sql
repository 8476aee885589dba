-- Quarantine records as analysts may see them: reasons and places, never the raw values.
select
    site_id,
    source_file,
    source_sha256,
    source_row,
    column_name,
    instrument,
    rule_id,
    category,
    message,
    batch_id,
    logical_date
from {{ source('quarantine', 'records') }}

-- Quarantine records as analysts may see them: rules and places, never the raw values or the
-- site's own text. The restricted store's message quotes the offending cell, so it is never
-- loaded (warehouse/dbt_sources.py); `message` here is built from the rule id, the column and
-- the position only.
with records as (
    select * from {{ source('quarantine', 'records') }}
)

select
    site_id,
    source_sha256,
    source_row,
    column_name,
    instrument,
    rule_id,
    category,
    rule_id
        || coalesce(' (' || instrument || ')', '')
        || coalesce(' in column ' || column_name, '')
        || coalesce(' at row ' || cast(source_row as varchar), ' (whole file)') as message,
    batch_id,
    logical_date
from records

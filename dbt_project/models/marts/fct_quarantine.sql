-- Why deliveries were not (fully) accepted: counts per site, reason category, rule and
-- instrument, over every delivery so far. No raw values (they stay in the restricted store).
select
    site_id,
    category,
    rule_id,
    coalesce(instrument, '(whole row or file)') as instrument,
    cast(count(*) as integer) as n_records,
    cast(count(distinct source_sha256) as integer) as n_files,
    cast(count(*) filter (where source_row is null) as integer) as n_file_level,
    min(logical_date) as first_logical_date,
    max(logical_date) as last_logical_date,
    min(message) as example_message
from {{ ref('stg_quarantine__records') }}
group by site_id, category, rule_id, coalesce(instrument, '(whole row or file)')

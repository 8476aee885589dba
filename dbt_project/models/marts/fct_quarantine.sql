-- Why deliveries were not (fully) accepted: counts per site, reason category, rule and
-- instrument, over every delivery so far, with what the rule means (the intake rule
-- catalogue). No raw values (they stay in the restricted store).
with records as (
    select * from {{ ref('stg_quarantine__records') }}
),

rules as (
    select * from {{ ref('stg_intake__rules') }}
),

counted as (
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
    from records
    group by site_id, category, rule_id, coalesce(instrument, '(whole row or file)')
)

select
    counted.*,
    rules.summary as rule_summary
from counted
left join rules using (rule_id)

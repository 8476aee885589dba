-- The catalogue of intake rules: what each quarantine rule means and what to do about it.
select
    rule_id,
    category,
    level,
    summary
from {{ source('intake_rules', 'rules') }}

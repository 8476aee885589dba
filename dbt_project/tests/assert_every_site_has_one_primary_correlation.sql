-- Every configured site has exactly one primary alliance-outcome row, even without data: the
-- forest plot and the pooled headline list every site.
select s.site_id, count(m.site_id) as primary_rows
from {{ ref('stg_consortium__sites') }} as s
left join {{ ref('mart_alliance_outcome_site') }} as m
    on s.site_id = m.site_id and m.is_primary
group by s.site_id
having count(m.site_id) <> 1

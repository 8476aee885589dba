-- Per-site Fisher z pooled across sites (site = study), for
--   scope 'primary':    each site's primary row (is_primary), the consortium's headline;
--   scope 'rater_role': each site's primary alliance and outcome measure, per rater role;
-- and for the raw and the baseline-residualized r (correlation_type).
-- Fixed effect: w = 1 / se^2 (= n - 3), z = sum w z / sum w. Q = sum w (z - z_fixed)^2;
-- DerSimonian-Laird tau2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w)), w* = 1 / (se^2 +
-- tau2); I2 = max(0, (Q - (k - 1)) / Q). The random-effects prediction interval (Higgins,
-- Thompson & Spiegelhalter 2009) is z* +- t_{k-2} sqrt(tau2 + se*^2), for k >= 3.
-- Everything is back-transformed with tanh. Sums over sites add in site order (ordered_sum), so
-- the bytes do not depend on the thread count.
with site_rows as (
    select m.*, s.primary_alliance, s.primary_outcome
    from {{ ref('mart_alliance_outcome_site') }} as m
    inner join {{ ref('stg_consortium__sites') }} as s on m.site_id = s.site_id
),

effects as (
    {%- set scopes = [
        ('primary', 'is_primary'),
        ('rater_role', 'alliance_instrument = primary_alliance'
            ~ ' and outcome_instrument = primary_outcome'),
    ] %}
    {%- set kinds = [('raw', ''), ('residualized', '_residualized')] %}
    {%- for scope, condition in scopes %}
    {%- set outer = loop %}
    {%- for kind, suffix in kinds %}
    select
        site_id,
        '{{ scope }}' as scope,
        rater_role,
        '{{ kind }}' as correlation_type,
        n,
        fisher_z{{ suffix }} as z,
        1.0 / (se_z{{ suffix }} * se_z{{ suffix }}) as w
    from site_rows
    where {{ condition }} and fisher_z{{ suffix }} is not null
    {{ 'union all' if not (loop.last and outer.last) }}
    {%- endfor %}
    {%- endfor %}
),

fixed as (
    select
        scope,
        rater_role,
        correlation_type,
        count(*) as k,
        sum(n) as n_clients,
        {{ ordered_sum('w', 'site_id') }} as sum_w,
        {{ ordered_sum('w * w', 'site_id') }} as sum_w2,
        {{ ordered_sum('w * z', 'site_id') }} / {{ ordered_sum('w', 'site_id') }} as z_fixed
    from effects
    group by scope, rater_role, correlation_type
),

heterogeneity as (
    select f.*, {{ ordered_sum('e.w * (e.z - f.z_fixed) ^ 2', 'e.site_id') }} as q
    from fixed as f
    inner join effects as e using (scope, rater_role, correlation_type)
    group by all
),

tau as (
    select
        *,
        case
            when k > 1 then greatest(0, (q - (k - 1)) / (sum_w - sum_w2 / sum_w))
            else 0
        end as tau2,
        case when q > 0 then greatest(0, (q - (k - 1)) / q) else 0 end as i2
    from heterogeneity
),

random as (
    select
        t.*,
        {{ ordered_sum('e.z / (1 / e.w + t.tau2)', 'e.site_id') }}
            / {{ ordered_sum('1 / (1 / e.w + t.tau2)', 'e.site_id') }} as z_random,
        sqrt(1 / {{ ordered_sum('1 / (1 / e.w + t.tau2)', 'e.site_id') }}) as se_random
    from tau as t
    inner join effects as e using (scope, rater_role, correlation_type)
    group by all
),

estimates as (
    select
        scope, rater_role, correlation_type, 'fixed' as method, k, n_clients,
        z_fixed as z, sqrt(1 / sum_w) as se, 0.0 as tau2, i2, q,
        cast(null as double) as pi_half_width
    from random
    union all
    select
        scope, rater_role, correlation_type, 'random_dl', k, n_clients,
        z_random, se_random, tau2, i2, q,
        {{ t_quantile_975('k - 2') }} * sqrt(tau2 + se_random * se_random)
    from random
)

select
    method,
    cast(k as integer) as k_sites,
    cast(n_clients as integer) as n_clients,
    cast(tanh(z) as double) as r,
    cast(z as double) as fisher_z,
    cast(se as double) as se_z,
    cast(tanh(z - {{ var('ci_z') }} * se) as double) as ci_low,
    cast(tanh(z + {{ var('ci_z') }} * se) as double) as ci_high,
    cast(tau2 as double) as tau2,
    cast(i2 as double) as i2,
    cast(q as double) as q,
    scope,
    rater_role,
    correlation_type,
    cast(k - 1 as integer) as q_df,
    cast(tanh(z - pi_half_width) as double) as pi_low,
    cast(tanh(z + pi_half_width) as double) as pi_high,
    '{{ early_alliance_rule() }}' as early_alliance_rule
from estimates

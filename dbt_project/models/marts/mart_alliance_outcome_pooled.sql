-- Fixed-effect (inverse variance, w = n - 3) and DerSimonian-Laird random-effects pooling of
-- the per-site Fisher z. tau2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w));
-- I2 = max(0, (Q - df) / Q). Back-transformed with tanh.
with sites as (
    select fisher_z as z, 1.0 / (se_z * se_z) as w, n
    from {{ ref('mart_alliance_outcome_site') }}
    where fisher_z is not null
),

fixed as (
    select
        count(*) as k,
        sum(n) as n_clients,
        sum(w) as sum_w,
        sum(w * w) as sum_w2,
        sum(w * z) / sum(w) as z_fixed
    from sites
),

heterogeneity as (
    select
        f.*,
        (select sum(s.w * power(s.z - f.z_fixed, 2)) from sites as s) as q
    from fixed as f
    where f.k > 0
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
        (select sum(s.z / (1 / s.w + t.tau2)) / sum(1 / (1 / s.w + t.tau2)) from sites as s)
            as z_random,
        (select sqrt(1 / sum(1 / (1 / s.w + t.tau2))) from sites as s) as se_random
    from tau as t
),

estimates as (
    select
        'fixed' as method, k, n_clients, z_fixed as z, sqrt(1 / sum_w) as se,
        0.0 as tau2, i2, q
    from random
    union all
    select 'random_dl', k, n_clients, z_random, se_random, tau2, i2, q
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
    cast(q as double) as q
from estimates

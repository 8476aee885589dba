{#-
    Aggregates whose result does not depend on the order rows arrive in, so a build on every
    core gives the same bytes as a build on one (issue 14). DuckDB adds DOUBLEs in whatever order
    its threads finish, which moves the last bits of a sum, a mean, an SD or an r between runs.
    These macros round each value once to EXACT_SCALE decimals (a per-row, order-free step; the
    registry's response grids have at most 2 decimals), add exact DECIMALs (integer arithmetic,
    associative), and only then compute the statistic from the exact sums in DOUBLE:
      var = (n Sxx - Sx^2) / (n (n - 1)),   r = (n Sxy - Sx Sy) / sqrt((n Sxx - Sx^2)(n Syy - Sy^2))
    The numerators are exact, so there is no cancellation error either. DECIMAL(38, 9) products
    keep 20 integer digits: room for sums of squares of a million clients' scores.
    `over` (e.g. 'over client_series') makes any of them a window aggregate; `where` restricts
    the rows like a FILTER clause. Each returns DOUBLE (null where the statistic is undefined).
    Small sums over a handful of rows (the pooled meta-analysis) use an explicit ORDER BY instead
    (ordered_sum).
-#}

{% macro _exact_value(x, where=none) -%}
    cast(case when {{ where if where else 'true' }} then ({{ x }}) end as decimal(38, 9))
{%- endmacro %}

{#- The exact sum as DOUBLE. -#}
{% macro exact_sum(x, where=none, over='') -%}
    cast(sum({{ _exact_value(x, where) }}) {{ over }} as double)
{%- endmacro %}

{#- The mean: exact sum / count, as DOUBLE. -#}
{% macro exact_avg(x, where=none, over='') -%}
    cast(avg({{ _exact_value(x, where) }}) {{ over }} as double)
{%- endmacro %}

{#- n Sxx - Sx^2 over rows where x (and `where`) holds, exact. -#}
{% macro _exact_ss(x, where=none, over='') -%}
    (count({{ _exact_value(x, where) }}) {{ over }}
        * sum({{ _exact_value(x, where) }} * {{ _exact_value(x, where) }}) {{ over }}
        - sum({{ _exact_value(x, where) }}) {{ over }} * sum({{ _exact_value(x, where) }}) {{ over }})
{%- endmacro %}

{#- Sample variance (n - 1 denominator); null below 2 values, like var_samp. -#}
{% macro exact_var_samp(x, where=none, over='') -%}
    case
        when count({{ _exact_value(x, where) }}) {{ over }} > 1
            then cast({{ _exact_ss(x, where, over) }} as double)
                / (count({{ _exact_value(x, where) }}) {{ over }}
                    * (count({{ _exact_value(x, where) }}) {{ over }} - 1))
    end
{%- endmacro %}

{#- Sample SD; null below 2 values, like stddev_samp. -#}
{% macro exact_stddev_samp(x, where=none, over='') -%}
    sqrt({{ exact_var_samp(x, where, over) }})
{%- endmacro %}

{#- Pearson r over the rows where both are non-null, within [-1, 1]; null without 2 pairs or
    without variance. -#}
{% macro exact_corr(x, y, where=none) -%}
    {%- set both = '(' ~ x ~ ') is not null and (' ~ y ~ ') is not null'
        ~ (' and (' ~ where ~ ')' if where else '') -%}
    {%- set n = 'count(' ~ _exact_value(x, both) ~ ')' -%}
    case
        when {{ n }} > 1
            and {{ _exact_ss(x, both) }} > 0
            and {{ _exact_ss(y, both) }} > 0
            then greatest(-1.0, least(1.0, cast(
                    {{ n }} * sum({{ _exact_value(x, both) }} * {{ _exact_value(y, both) }})
                    - sum({{ _exact_value(x, both) }}) * sum({{ _exact_value(y, both) }})
                    as double)
                / sqrt(cast({{ _exact_ss(x, both) }} as double))
                / sqrt(cast({{ _exact_ss(y, both) }} as double))))
    end
{%- endmacro %}

{#- A DOUBLE sum added in a fixed row order (`order_by`: a unique key of the group's rows). -#}
{% macro ordered_sum(x, order_by) -%}
    sum({{ x }} order by {{ order_by }})
{%- endmacro %}

{#- A score on an instrument's scale, published exactly: DECIMAL at the registry's precision
    (var score_decimals, set by the build from the registry), rounded half away from zero. -#}
{% macro score_type() -%}
    decimal(18, {{ var('score_decimals') }})
{%- endmacro %}

{% macro as_score(x) -%}
    cast(round(({{ x }}), {{ var('score_decimals') }}) as {{ score_type() }})
{%- endmacro %}

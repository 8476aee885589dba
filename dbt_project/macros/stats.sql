{#-
    Statistical helpers shared by the marts. DuckDB has no t or chi-square quantile functions,
    so the two-sided 95 % t critical values for df 1..100 are tabulated here (scipy.stats.t.ppf,
    12 decimals; tests/test_science_stats.py re-derives every value) and df > 100 uses the
    Cornish-Fisher expansion (four terms), accurate to better than 1e-10 there.
-#}

{#- t_{0.975}(df) for an integer df expression; null for df < 1. -#}
{% macro t_quantile_975(df) -%}
{%- set T_975 = [
        12.706204736175, 4.302652729749, 3.182446305284, 2.776445105198, 2.570581835636,
        2.446911851145, 2.364624251593, 2.306004135204, 2.262157162798, 2.228138851986,
        2.200985160092, 2.178812829667, 2.160368656463, 2.144786687918, 2.13144954556,
        2.119905299221, 2.109815577833, 2.100922040241, 2.093024054408, 2.085963447266,
        2.079613844728, 2.073873067904, 2.068657610419, 2.063898561628, 2.059538552753,
        2.055529438643, 2.05183051648, 2.048407141795, 2.045229642133, 2.042272456301,
        2.039513446396, 2.03693334346, 2.034515297449, 2.032244509318, 2.03010792825,
        2.02809400098, 2.026192463029, 2.024394163912, 2.022690920037, 2.021075390306,
        2.019540970441, 2.018081702818, 2.016692199228, 2.015367574444, 2.014103388881,
        2.012895598919, 2.01174051373, 2.010634757624, 2.009575237129, 2.008559112101,
        2.007583770316, 2.006646805062, 2.005745995318, 2.004879288188, 2.004044783289,
        2.003240718848, 2.002465459291, 2.001717484145, 2.000995378088, 2.000297822014,
        1.999623584995, 1.998971517033, 1.998340542521, 1.997729654318, 1.997137908392,
        1.996564418952, 1.996008354025, 1.99546893143, 1.994945415107, 1.994437111771,
        1.993943367846, 1.993463566662, 1.99299712589, 1.992543495181, 1.992102154002,
        1.991672609645, 1.991254395388, 1.990847068812, 1.99045021023, 1.990063421254,
        1.989686323457, 1.989318557137, 1.988959780175, 1.988609666976, 1.988267907477,
        1.987934206239, 1.987608281589, 1.987289864831, 1.986978699506, 1.986674540704,
        1.986377154419, 1.986086316951, 1.985801814346, 1.985523441867, 1.985251003505,
        1.984984311522, 1.984723186014, 1.984467454508, 1.984216951586, 1.983971518524
    ] -%}
    case
        when ({{ df }}) is null or ({{ df }}) < 1 then null
        {%- for value in T_975 %}
        when ({{ df }}) = {{ loop.index }} then cast({{ value }} as double)
        {%- endfor %}
        else {{ _cornish_fisher_975(df) }}
    end
{%- endmacro %}

{% macro _cornish_fisher_975(df) -%}
    {#- t = z + g1/df + ... + g4/df^4 (Abramowitz & Stegun 26.7.5), coefficients from z. -#}
    {%- set z = 1.959963984540054 -%}
    {%- set g1 = (z ** 3 + z) / 4 -%}
    {%- set g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96 -%}
    {%- set g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384 -%}
    {%- set g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160 -%}
    (cast({{ z }} as double)
        + cast({{ g1 }} as double) / cast({{ df }} as double)
        + cast({{ g2 }} as double) / power(cast({{ df }} as double), 2)
        + cast({{ g3 }} as double) / power(cast({{ df }} as double), 3)
        + cast({{ g4 }} as double) / power(cast({{ df }} as double), 4))
{%- endmacro %}

{#- Pearson r only where it is defined: enough pairs and some variance. Exact sums
    (macros/exact.sql), so r does not depend on how many threads computed it. -#}
{% macro defined_corr(x, y, min_n) -%}
    case
        when count({{ y }}) filter (where {{ x }} is not null) >= {{ min_n }}
            then {{ exact_corr(x, y) }}
    end
{%- endmacro %}

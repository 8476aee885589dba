{#-
    Rules whose constants come from the instrument registry (stg_registry__instruments): the SQL
    names the registry column, never a number, so a corrected constant needs no code change.
-#}

{#- score <operator> threshold with the registry's operator ('>=' or '<'); null when either is. -#}
{% macro meets_cutoff(score, operator, threshold) -%}
    case
        when ({{ score }}) is null or ({{ operator }}) is null or ({{ threshold }}) is null then null
        when ({{ operator }}) = '>=' then ({{ score }}) >= ({{ threshold }})
        when ({{ operator }}) = '<' then ({{ score }}) < ({{ threshold }})
    end
{%- endmacro %}

{#- Percent of maximum possible (Cohen et al. 1999): 0 at the scale minimum, 100 at its maximum. -#}
{% macro pomp(score, total_min, total_max) -%}
    100.0 * (({{ score }}) - ({{ total_min }})) / (({{ total_max }}) - ({{ total_min }}))
{%- endmacro %}

{#- +1 when a lower score is better, -1 when higher is better: improvement = sign * (before - after). -#}
{% macro improvement_sign(direction) -%}
    case ({{ direction }}) when 'higher_is_worse' then 1 when 'higher_is_better' then -1 end
{%- endmacro %}

{#- The configured early-alliance rule, validated at compile time. -#}
{% macro early_alliance_rule() -%}
    {%- set rule = var('early_alliance_rule') -%}
    {%- if rule not in ('mean', 'session') -%}
        {{ exceptions.raise_compiler_error(
            "var early_alliance_rule must be 'mean' or 'session', got " ~ rule) }}
    {%- endif -%}
    {{- rule -}}
{%- endmacro %}

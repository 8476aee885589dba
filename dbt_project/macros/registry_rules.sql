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

{#-
    A score by the registry's scoring vocabulary, from the aggregates of one form or subscale
    whose blanks are within the missing-item limit (the caller checks the limit):
      n_items        items of the form / subscale
      answered_mean  mean of the answered (keyed) items
      n_filled       items with a value after the missing-item method filled blanks
      filled_sum     sum of those values
    'mean': multiplier x sum / items with a value. 'sum' over a form without gaps (complete or
    filled): the sum, rounded to the response grid's decimals. 'sum' with blanks under
    'prorate_mean': answered mean x items. Anything else: null.
-#}
{% macro registry_score(scoring, multiplier, method, decimals, n_items, answered_mean, n_filled, filled_sum) -%}
    case
        when ({{ scoring }}) = 'mean' and ({{ n_filled }}) > 0
            then ({{ multiplier }}) * ({{ filled_sum }}) / ({{ n_filled }})
        when ({{ scoring }}) = 'sum' and ({{ n_filled }}) = ({{ n_items }})
            then round({{ filled_sum }}, {{ decimals }})
        when ({{ scoring }}) = 'sum' and ({{ method }}) = 'prorate_mean'
            then ({{ answered_mean }}) * ({{ n_items }})
    end
{%- endmacro %}

{#-
    The score rounded by the rule in force (the registry's missing.rounding, or the consortium's
    scoring_policy): 'half_up' to the response grid's step, halves going up (PHQ-9 prorated
    6.43 -> 6, 4.5 -> 5; a VAS sum on step 0.1: 23.25 -> 23.3); 'none' or null: unchanged.
    The small epsilon keeps a half that binary floating point stores as x.4999... a half.
-#}
{% macro policy_round(score, rounding, step, decimals) -%}
    case
        when ({{ rounding }}) = 'half_up' and ({{ score }}) is not null
            then round(
                floor(({{ score }}) / ({{ step }}) + 0.5 + 1e-9) * ({{ step }}), {{ decimals }}
            )
        else ({{ score }})
    end
{%- endmacro %}

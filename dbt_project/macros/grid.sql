{#-
    Scores on a response grid (the registry's item_decimals: 0 for whole-number items, 1 for
    the SRS / ORS visual analogue scales) compared with a threshold must be compared as grid
    values, not as binary floating point: 32.8 - 31.8 is 0.9999999999999964 and 8.2 - 3.2 is
    4.999999999999999, so a change of exactly the threshold would be missed.
-#}

{#-
    x rounded to `decimals` when it lies on that grid up to floating-point error (1e-9 is far
    above the error of sums and differences of scores up to a few hundred, far below any grid
    step); otherwise x unchanged, so a score that is legitimately off the grid (a prorated
    PHQ-9 12.857, a CORE-10 clinical score 24.44) keeps its value instead of being rounded
    across a threshold. Null decimals: x unchanged.
-#}
{% macro snap_to_grid(x, decimals) -%}
    case
        when abs(({{ x }}) - round(({{ x }}), {{ decimals }})) < 1e-9
            then round(({{ x }}), {{ decimals }})
        else ({{ x }})
    end
{%- endmacro %}

{#- Fails for every row where a listed count is small (1..threshold - 1): disclosure control. -#}
{% test no_small_cells(model, columns, threshold=none) %}
{%- set limit = threshold if threshold is not none else var('small_cell_threshold') %}
select *
from {{ model }}
where
    {%- for column in columns %}
    coalesce({{ column }} between 1 and {{ limit }} - 1, false){{ ' or' if not loop.last }}
    {%- endfor %}
{% endtest %}

{#-
    Small-cell suppression (var small_cell_threshold, default 11: counts 1..10 are hidden, as
    CMS does). A count is published only if it is not small and, for every count above it in
    its chain of denominators (e.g. recovered < eligible < paired < finished < clients), that
    denominator is not small and neither is the difference (denominator - count): a reader who
    sees both could otherwise work out, or bound to a few values, a small group. Zero is
    published: it reveals no one.
-#}

{% macro is_small(x) -%}
    coalesce(({{ x }}) between 1 and {{ var('small_cell_threshold') }} - 1, false)
{%- endmacro %}

{% macro publishable(count, ancestors=[]) -%}
    (not {{ is_small(count) }}
    {%- for ancestor in ancestors %}
        and not {{ is_small(ancestor) }}
        and not {{ is_small('(' ~ ancestor ~ ') - (' ~ count ~ ')') }}
    {%- endfor %})
{%- endmacro %}

{#- The chain of denominators above `count` in a {count: parent} mapping, nearest first. -#}
{% macro ancestors_of(count, parents) -%}
    {%- set chain = [] -%}
    {%- set node = {'name': parents.get(count)} -%}
    {%- for _ in range(parents | length) -%}
        {%- if node['name'] is not none -%}
            {%- do chain.append(node['name']) -%}
            {%- do node.update({'name': parents.get(node['name'])}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return(chain) -}}
{%- endmacro %}

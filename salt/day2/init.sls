{#- The day-2 agent: salt-minion on every node, salt-master on the masters
    (docs/day2.md). Its secrets come from the brine_secrets pillar. With
    env.day2.agent false, nothing (an agent installed earlier is left as it is). -#}
{%- from "day2/map.jinja" import day2 with context %}
{%- if pillar.env.day2.agent and 'deploy' not in pillar.brine_node.roles %}

include:
  - day2.installed
{%- if day2.is_master %}
  - day2.master
{%- endif %}
  - day2.minion
{%- else %}

day2-agent-off:
  test.succeed_without_changes:
    - name: no day-2 agent here (env.day2.agent is false, or this is the deploy node)
{%- endif %}

{#- Drift correction paused on this node (cluster.upgrade, before it changes
    anything): the scheduled highstate records a skipped run while the file
    exists. The day-2 agent's state (day2.minion) removes it: the agent step at
    the end of cluster.upgrade or cluster.deploy. -#}
{%- from "day2/map.jinja" import day2 with context %}

day2-drift-correction-paused:
  file.managed:
    - name: {{ day2.drift_paused_file }}
    - contents: {{ pillar.get('brine_pause_reason', 'paused by Brine') | json }}
    - mode: "0600"
    - makedirs: True

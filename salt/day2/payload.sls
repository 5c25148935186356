{#- What a master runs Brine from (masters only; applied from the deploy side by
    cluster.deploy's agent step, never by a highstate, which cannot fetch the
    payload from itself): Brine's states and modules (the payload the deploy
    side packs: salt-run cluster.agent_payload), this cluster's pillar as
    declared on the deploy side, and its secrets (0600); on a control cluster's
    masters (env.day2.control) also every other valid cluster's pillar, secrets,
    known_hosts and SSH key, from which they deploy those clusters. A new
    payload restarts a running salt-master. -#}
{%- from "day2/map.jinja" import day2 with context %}
{%- if day2.is_master and pillar.env.day2.agent %}
{%- set files = pillar.get('brine_day2', {}).get('pillar_files', {}) %}

day2-product-archive-present:
  file.managed:
    - name: {{ day2.root }}/product.tar.gz
    - source: salt://brine-day2/brine.tar.gz
    - mode: "0644"
    - makedirs: True

day2-product-unpacked:
  cmd.run:
    - name: >-
        set -e; cd {{ day2.root }}; rm -rf product.new; mkdir product.new;
        tar -xzf product.tar.gz -C product.new; sha256sum product.tar.gz > product.new/.archive.sha256;
        rm -rf product; mv product.new product
    - unless: cd {{ day2.root }} && sha256sum --status -c product/.archive.sha256
    - require:
      - file: day2-product-archive-present
{%- for name in files | sort %}

day2-pillar-{{ name }}-managed:
  file.managed:
    - name: {{ day2.root }}/pillar/{{ name }}
    - contents_pillar: brine_day2:pillar_files:{{ name }}
    - mode: "0644"
    - makedirs: True
{%- endfor %}
{%- for path in pillar.get('brine_secrets', {}).get('salt', {}).get('cluster_state', {}) | sort %}

day2-cluster-state-{{ path }}-managed:
  file.managed:
    - name: {{ day2.root }}/state/clusters/{{ path }}
    - contents_pillar: brine_secrets:salt:cluster_state:{{ path }}
    - mode: "0600"
    - makedirs: True
    - dir_mode: "0700"
    - show_changes: False
{%- endfor %}

{#- This node's own minion keeps copies of Brine's modules (extmods), which the
    master's orchestrates also import: refreshed from the new payload at once. #}
day2-local-minion-modules-synced:
  cmd.run:
    - name: {{ day2.venv }}/bin/salt-call --local --file-root={{ day2.root }}/product/ext saltutil.sync_all
    - onlyif: test -x {{ day2.venv }}/bin/salt-call
    - onchanges:
      - cmd: day2-product-unpacked

day2-master-restarted-for-payload:
  cmd.run:
    - name: systemctl try-restart salt-master
    - onlyif: test -e /etc/systemd/system/salt-master.service
    - onchanges:
      - cmd: day2-product-unpacked
{%- for name in files | sort %}
      - file: day2-pillar-{{ name }}-managed
{%- endfor %}
{%- else %}

day2-payload-not-here:
  test.succeed_without_changes:
    - name: the payload is for the masters of a cluster with env.day2.agent
{%- endif %}

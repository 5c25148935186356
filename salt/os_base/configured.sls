{#- Kernel modules, sysctl, swap and /etc/hosts as Kubernetes needs them, now
    and at every boot. Kernel-wide settings a node shares with its host are
    reported, never changed from the node (_states/brine_kernel.py). Every
    state runs even when one before it fails, so one apply names every gap. -#}
{%- from "os_base/map.jinja" import os_base with context %}

os-kernel-modules-persisted:
  file.managed:
    - name: {{ os_base.modules_load_file }}
    - source: salt://os_base/files/modules-load.conf.j2
    - template: jinja
    - makedirs: True
    - context:
        modules: {{ os_base.kernel_modules | json }}

os-kernel-modules-loaded:
  brine_kernel.module_loaded:
    - names: {{ os_base.kernel_modules | json }}

os-sysctl-persisted:
  file.managed:
    - name: {{ os_base.sysctl_file }}
    - source: salt://os_base/files/sysctl.conf.j2
    - template: jinja
    - makedirs: True
    - context:
        sysctl: {{ os_base.sysctl | json }}

os-sysctl-applied:
  brine_kernel.sysctl_present:
    - names:
{%- for key, value in os_base.sysctl.items() %}
      - {{ key }}:
        - value: {{ value | json }}
{%- if key in os_base.tolerate_readonly %}
        - tolerate_readonly: {{ os_base.tolerate_readonly[key] | json }}
{%- endif %}
{%- endfor %}

os-swap-off:
  brine_kernel.swap_off: []

{#- Swap lines stay in /etc/fstab, commented with a marker clean.sls restores. #}
os-swap-not-in-fstab:
  file.replace:
    - name: /etc/fstab
    - pattern: '^([^#\s]\S*\s+\S+\s+swap\s.*)$'
    - repl: '# brine: swap off for kubelet: \1'
    - ignore_if_missing: True

os-hosts-list-every-node:
  host.present:
    - clean: True
    - names:
{%- for node in os_base.hosts %}
      - {{ node.name }}:
        - ip: {{ node.address | string | json }}
{%- endfor %}

{#- The tools kube-proxy, kubelet and the CNI call, from the offline repository. -#}
{%- from "os_base/map.jinja" import os_base with context %}

include:
  - offline_repo

os-packages-installed:
  pkg.installed:
    - pkgs: {{ os_base.package_list | json }}
    - install_recommends: False
    - require:
      - sls: offline_repo

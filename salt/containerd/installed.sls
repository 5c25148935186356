{%- from "containerd/map.jinja" import containerd with context %}

include:
  - offline_repo

containerd-packages-installed:
  pkg.installed:
    - pkgs: {{ containerd.packages | json }}
    - require:
      - sls: offline_repo

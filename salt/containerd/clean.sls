{%- from "containerd/map.jinja" import containerd with context %}

containerd-dead:
  service.dead:
    - name: containerd
    - enable: False

containerd-config-absent:
  file.absent:
    - names:
      - {{ containerd.config_file }}
      - {{ containerd.hosts_dir }}
    - require:
      - service: containerd-dead

containerd-packages-removed:
  pkg.removed:
    - pkgs: {{ containerd.packages | json }}
    - require:
      - file: containerd-config-absent

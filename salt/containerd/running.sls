{%- from "containerd/map.jinja" import containerd with context %}

include:
  - containerd.configured

containerd-running:
  service.running:
    - name: containerd
    - enable: True
    - watch:
      - file: containerd-config-managed
      - file: containerd-registry-hosts-managed
      - file: bundle-ca-installed

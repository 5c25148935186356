{#- The file server (Debian's nginx) and the registry (Debian's docker-registry,
    its unit pointed at Brine's config): TLS from the cluster's bundle CA,
    htpasswd authentication. Secrets come from the brine_secrets pillar. -#}
{%- from "bundle_server/map.jinja" import bundle_server with context %}
{%- set registry_dir = bundle_server.config_dir ~ '/registry' %}

include:
  - bundle_server.installed
  - bundle_ca.installed

registry-tls-certificate-managed:
  file.managed:
    - name: {{ registry_dir }}/tls.crt
    - contents_pillar: brine_secrets:registry_crt
    - makedirs: True
    - mode: "0644"

registry-tls-key-managed:
  file.managed:
    - name: {{ registry_dir }}/tls.key
    - contents_pillar: brine_secrets:registry_key
    - user: docker-registry
    - group: docker-registry
    - mode: "0600"
    - show_changes: False
    - require:
      - cmd: bundle-server-packages-installed

registry-htpasswd-managed:
  file.managed:
    - name: {{ registry_dir }}/htpasswd
    - contents_pillar: brine_secrets:registry_htpasswd
    - user: root
    - group: docker-registry
    - mode: "0640"
    - show_changes: False
    - require:
      - cmd: bundle-server-packages-installed

registry-storage-present:
  file.directory:
    - name: {{ bundle_server.registry_storage }}
    - user: docker-registry
    - group: docker-registry
    - mode: "0750"
    - require:
      - cmd: bundle-server-packages-installed

registry-config-managed:
  file.managed:
    - name: {{ registry_dir }}/config.yml
    - source: salt://bundle_server/files/registry-config.yml.j2
    - template: jinja
    - context:
        port: {{ bundle_server.registry_port }}
        storage: {{ bundle_server.registry_storage }}
        tls_dir: {{ registry_dir }}

registry-unit-override-managed:
  file.managed:
    - name: /etc/systemd/system/docker-registry.service.d/brine.conf
    - makedirs: True
    - contents: |
        # Brine: the registry serves the bundle's images with TLS and authentication.
        [Service]
        ExecStart=
        ExecStart=/usr/bin/docker-registry serve {{ registry_dir }}/config.yml
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: registry-unit-override-managed

file-server-default-site-absent:
  file.absent:
    - name: /etc/nginx/sites-enabled/default
    - require:
      - cmd: bundle-server-packages-installed

file-server-config-managed:
  file.managed:
    - name: /etc/nginx/conf.d/brine-file-server.conf
    - source: salt://bundle_server/files/file-server.conf.j2
    - template: jinja
    - context:
        port: {{ bundle_server.file_server_port }}
        path: {{ bundle_server.file_server_path }}
        root: {{ bundle_server.current }}
        lines: {{ bundle_server.bundles_dir }}/lines
    - require:
      - cmd: bundle-server-packages-installed

{#- Undo bundle_server in reverse lifecycle order: services off, Brine's config
    gone. Unpacked bundles and the registry's storage are kept (remove
    /srv/brine by hand to reclaim them); packages stay installed. -#}
{%- from "bundle_server/map.jinja" import bundle_server with context %}

registry-dead:
  service.dead:
    - name: docker-registry
    - enable: False

file-server-config-absent:
  file.absent:
    - name: /etc/nginx/conf.d/brine-file-server.conf

file-server-reloaded:
  service.running:
    - name: nginx
    - reload: True
    - onchanges:
      - file: file-server-config-absent

registry-config-absent:
  file.absent:
    - names:
      - {{ bundle_server.config_dir }}/registry
      - /etc/systemd/system/docker-registry.service.d/brine.conf
    - require:
      - service: registry-dead

bundle-server-local-source-absent:
  file.absent:
    - name: {{ bundle_server.config_dir }}/bundle.list

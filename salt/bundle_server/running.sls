{%- from "bundle_server/map.jinja" import bundle_server with context %}

include:
  - bundle_server.configured

file-server-running:
  service.running:
    - name: nginx
    - enable: True
    - reload: True
    - watch:
      - file: file-server-config-managed
      - file: file-server-default-site-absent

registry-running:
  service.running:
    - name: docker-registry
    - enable: True
    - watch:
      - file: registry-config-managed
      - file: registry-tls-certificate-managed
      - file: registry-tls-key-managed
      - file: registry-htpasswd-managed
      - module: registry-unit-override-managed

file-server-healthy:
  http.wait_for_successful_query:
    - name: {{ bundle_server.url }}/index.json
    - status: 200
    - wait_for: 30
    - request_interval: 1
    - require:
      - service: file-server-running

registry-healthy:
  http.wait_for_successful_query:
    - name: https://{{ bundle_server.registry }}/v2/
    - status: 401
    - ca_bundle: {{ bundle_server.ca_file }}
    - wait_for: 30
    - request_interval: 1
    - require:
      - service: registry-running
      - cmd: bundle-ca-installed

bundle-images-pushed:
  brine_registry.images_pushed:
    - name: {{ bundle_server.registry }}
    - bundle: {{ bundle_server.current }}
    - ca_file: {{ bundle_server.ca_file }}
    - credentials_pillar: brine_secrets
    - require:
      - http: registry-healthy

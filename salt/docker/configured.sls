{#- Docker as the runtime (Kubernetes before 1.24, whose kubelet still speaks to
    it): systemd cgroups, docker.io mirrored by the private registry, the
    registry's CA and credentials (0600). Images other than docker.io's are
    always named with the private registry by Brine. -#}
{%- from "docker/map.jinja" import docker with context %}

include:
  - docker.installed
  - bundle_ca

docker-daemon-config-managed:
  file.managed:
    - name: {{ docker.daemon_file }}
    - source: salt://docker/files/daemon.json.j2
    - template: jinja
    - makedirs: True
    - context:
        registry: {{ docker.registry }}

docker-registry-ca-managed:
  file.managed:
    - name: {{ docker.certs_dir }}/{{ docker.registry }}/ca.crt
    - contents_pillar: brine_secrets:bundle_ca_crt
    - makedirs: True

docker-registry-auth-managed:
  file.managed:
    - names: {{ docker.auth_files | json }}
    - source: salt://docker/files/auth.json.j2
    - template: jinja
    - makedirs: True
    - mode: "0600"
    - show_changes: False
    - context:
        registry: {{ docker.registry }}

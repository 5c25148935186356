{%- from "docker/map.jinja" import docker with context %}

docker-dead:
  service.dead:
    - name: docker
    - enable: False

docker-config-absent:
  file.absent:
    - names:
      - {{ docker.daemon_file }}
      - {{ docker.certs_dir }}/{{ docker.registry }}
{%- for path in docker.auth_files %}
      - {{ path }}
{%- endfor %}
    - require:
      - service: docker-dead

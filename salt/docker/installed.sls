{%- from "docker/map.jinja" import docker with context %}

include:
  - offline_repo

docker-packages-installed:
  pkg.installed:
    - pkgs: {{ docker.packages | json }}
    - require:
      - sls: offline_repo

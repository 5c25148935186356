include:
  - docker.configured

docker-running:
  service.running:
    - name: docker
    - enable: True
    - watch:
      - file: docker-daemon-config-managed
      - file: docker-registry-ca-managed

include:
  - docker.installed
  - docker.configured
  - docker.running

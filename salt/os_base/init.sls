include:
  - os_base.installed
  - os_base.configured

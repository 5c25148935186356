include:
  - bundle_ca.installed

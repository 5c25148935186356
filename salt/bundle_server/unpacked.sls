{%- from "bundle_server/map.jinja" import bundle_server with context %}

bundle-unpacked:
  brine_bundle.unpacked:
    - name: {{ bundle_server.bundles_dir }}
    - source: {{ bundle_server.file }}

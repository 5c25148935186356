{#- The services' packages come from the bundle itself: the deploy node has no
    other source either. Only the bundle's repository is read for this install;
    the machine's own apt sources are left as they are. -#}
{%- from "bundle_server/map.jinja" import bundle_server with context %}
{%- set apt = "apt-get -q -o Dir::Etc::SourceList=" ~ bundle_server.config_dir ~ "/bundle.list -o Dir::Etc::SourceParts=/dev/null" %}

include:
  - bundle_server.unpacked

bundle-server-local-source-managed:
  file.managed:
    - name: {{ bundle_server.config_dir }}/bundle.list
    - makedirs: True
    - contents: "deb [trusted=yes] file:{{ bundle_server.current }}/debs ./"

bundle-server-packages-installed:
  cmd.run:
    - name: >-
        {{ apt }} update &&
        DEBIAN_FRONTEND=noninteractive {{ apt }} install -y --no-install-recommends {{ bundle_server.packages | join(' ') }}
    - unless: >-
        test "$(dpkg-query -W -f='${db:Status-Status}\n' {{ bundle_server.packages | join(' ') }} 2>/dev/null
        | grep -cx installed)" = "{{ bundle_server.packages | length }}"
    - require:
      - brine_bundle: bundle-unpacked
      - file: bundle-server-local-source-managed

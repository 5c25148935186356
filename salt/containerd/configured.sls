{#- containerd's config.toml (it holds the registry's credentials: 0600) and one
    hosts.toml per mirrored registry name, each resolving to the private registry
    only. -#}
{%- from "containerd/map.jinja" import containerd with context %}

include:
  - containerd.installed
  - bundle_ca

containerd-config-managed:
  file.managed:
    - name: {{ containerd.config_file }}
    - source: salt://containerd/files/config.toml.j2
    - template: jinja
    - makedirs: True
    - mode: "0600"
    - show_changes: False
    - context:
        containerd: {{ containerd | json }}
    - require:
      - pkg: containerd-packages-installed

containerd-registry-hosts-managed:
  file.managed:
    - names:
{%- for name in containerd.mirrored_registries %}
      - {{ containerd.hosts_dir }}/{{ name }}/hosts.toml:
        - context:
            upstream: {{ name }}
{%- endfor %}
    - source: salt://containerd/files/hosts.toml.j2
    - template: jinja
    - makedirs: True
    - defaults:
        registry: {{ containerd.registry }}
        ca_file: {{ containerd.ca_file }}

containerd-registry-hosts-only-brine:
  file.directory:
    - name: {{ containerd.hosts_dir }}
    - clean: True
    - require:
      - file: containerd-registry-hosts-managed

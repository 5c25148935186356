{#- What kubeadm reads on this node, before it runs: Brine's kubeadm config
    (from the brine_kubeadm pillar; it holds the bootstrap token: 0600, never
    shown), the patches for what kubeadm's API does not expose, and on masters
    the certificates kubeadm uses where it finds them: the cluster CA, the
    front-proxy CA, the service-account keys, and etcd's CA and API server
    client pair. Keys 0600; nothing secret is shown in changes. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}

kubernetes-config-dir-present:
  file.directory:
    - name: {{ kubernetes.config_dir }}
    - mode: "0700"
    - makedirs: True

kubernetes-kubeadm-config-managed:
  file.managed:
    - name: {{ kubernetes.config_file }}
    - contents_pillar: brine_kubeadm:config
    - mode: "0600"
    - show_changes: False
    - require:
      - file: kubernetes-config-dir-present

kubernetes-patches-dir-present:
  file.directory:
    - name: {{ kubernetes.patches_dir }}
    - mode: "0700"
    - require:
      - file: kubernetes-config-dir-present
{%- set patches = pillar.brine_kubeadm.patches %}
{%- if patches %}

kubernetes-patches-managed:
  file.managed:
    - names:
{%- for file in patches | sort %}
      - {{ kubernetes.patches_dir }}/{{ file }}:
        - contents_pillar: brine_kubeadm:patches:{{ file }}
{%- endfor %}
    - mode: "0600"
    - require:
      - file: kubernetes-patches-dir-present
{%- endif %}

kubernetes-patches-only-brine:
  file.directory:
    - name: {{ kubernetes.patches_dir }}
    - clean: True
    - require:
      - file: kubernetes-patches-dir-present
{%- if patches %}
      - file: kubernetes-patches-managed
{%- endif %}
{%- if kubernetes.is_master %}

kubernetes-pki-dirs-present:
  file.directory:
    - names:
      - {{ kubernetes.pki_dir }}
      - {{ kubernetes.pki_dir }}/etcd
    - mode: "0755"
    - makedirs: True

kubernetes-pki-certificates-managed:
  file.managed:
    - names:
      - {{ kubernetes.pki_dir }}/ca.crt:
        - contents_pillar: brine_secrets:kubernetes:ca_crt
      - {{ kubernetes.pki_dir }}/front-proxy-ca.crt:
        - contents_pillar: brine_secrets:kubernetes:front_proxy_ca_crt
      - {{ kubernetes.pki_dir }}/sa.pub:
        - contents_pillar: brine_secrets:kubernetes:sa_pub
      - {{ kubernetes.pki_dir }}/etcd/ca.crt:
        - contents_pillar: brine_secrets:etcd:ca_crt
      - {{ kubernetes.pki_dir }}/apiserver-etcd-client.crt:
        - contents_pillar: brine_secrets:etcd:apiserver_etcd_client_crt
    - mode: "0644"
    - require:
      - file: kubernetes-pki-dirs-present

kubernetes-pki-keys-managed:
  file.managed:
    - names:
      - {{ kubernetes.pki_dir }}/ca.key:
        - contents_pillar: brine_secrets:kubernetes:ca_key
      - {{ kubernetes.pki_dir }}/front-proxy-ca.key:
        - contents_pillar: brine_secrets:kubernetes:front_proxy_ca_key
      - {{ kubernetes.pki_dir }}/sa.key:
        - contents_pillar: brine_secrets:kubernetes:sa_key
      - {{ kubernetes.pki_dir }}/apiserver-etcd-client.key:
        - contents_pillar: brine_secrets:etcd:apiserver_etcd_client_key
    - mode: "0600"
    - show_changes: False
    - require:
      - file: kubernetes-pki-dirs-present
{%- endif %}

{#- Calico from the first master: the manifest (salt://network/files/calico.yaml.j2)
    rendered for env.network.calico (VXLAN, or BGP with BIRD and the declared peers),
    the pod network and the private registry, applied with kubectl. The validate step
    refuses Calico when the release line's bundle carries no Calico images. -#}
{%- set env = pillar.env %}
{%- set calico = env.network.calico %}
{%- set masters = [] %}
{%- for node in pillar.inventory.nodes if 'master' in node.roles %}{% do masters.append(node.name) %}{% endfor %}
{%- if pillar.brine_node.name == masters[0] %}

calico-manifest-managed:
  file.managed:
    - name: /etc/kubernetes/brine/calico.yaml
    - source: salt://network/files/calico.yaml.j2
    - template: jinja
    - mode: "0644"
    - context:
        backend: {{ 'bird' if calico.mode == 'bgp' else 'vxlan' }}
        ipip: {{ 'Always' if calico.mode == 'bgp' else 'Never' }}
        vxlan: {{ 'Never' if calico.mode == 'bgp' else 'CrossSubnet' }}
        pod_network: {{ env.networks.pod | string }}
        registry: {{ env.bundle.registry }}
        as_number: {{ (calico.bgp or {}).get('as_number', 64512) }}
        peers: {{ ((calico.bgp or {}).get('peers') or []) | json }}

calico-applied:
  cmd.run:
    # twice: the BGP resources need the CRDs of the same manifest established first
    - name: >-
        kubectl --kubeconfig=/etc/kubernetes/admin.conf apply -f /etc/kubernetes/brine/calico.yaml ||
        { sleep 5; kubectl --kubeconfig=/etc/kubernetes/admin.conf apply -f /etc/kubernetes/brine/calico.yaml; }
    - unless: kubectl --kubeconfig=/etc/kubernetes/admin.conf diff -f /etc/kubernetes/brine/calico.yaml
    - require:
      - file: calico-manifest-managed
{%- endif %}

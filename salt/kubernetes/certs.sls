{#- kubeadm's certificates on a master renewed when they come close to expiry
    (cluster.certs_renew applies this to one master at a time; pillar
    brine_certs: {days, force}). Brine's own etcd and API-server-to-etcd
    certificates are renewed by cluster.secrets and written by the etcd and
    kubernetes states. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}
{%- set asked = pillar.get('brine_certs', {}) %}

kubernetes-certificates-fresh:
  brine_kubeadm.certs_renewed:
    - name: kubeadm certificates of {{ pillar.brine_node.name }}
    - address: {{ pillar.brine_node.address | json }}
    - api_port: {{ kubernetes.api_port }}
    - days: {{ asked.get('days', 30) | int }}
    - force: {{ asked.get('force', False) | json }}

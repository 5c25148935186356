{#- The cluster's deploy settings in the ConfigMap kube-system/brine-cluster,
    from the first master: versions, networks, modes, every node's roles, the
    bundle's id, Brine's version and when these settings were recorded. Built
    from the env only: no secret can reach it. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}
{%- set env = pillar.env %}
{%- set nodes = {} %}
{%- for node in pillar.inventory.nodes %}{% do nodes.update({node.name: node.roles | join(',')}) %}{% endfor %}

kubernetes-deploy-record-applied:
  brine_kubeadm.record_applied:
    - name: brine-cluster
    - bundle_url: {{ kubernetes.bundle_url | json }}
    - data:
        cluster: {{ env.name | json }}
        kubernetes_version: {{ kubernetes.version | json }}
        kubeadm_api: {{ pillar.brine_kubeadm.api_version | json }}
        runtime: {{ env.runtime | json }}
        network_plugin: {{ env.network.plugin | json }}
        calico_mode: {{ (env.network.calico.mode if env.network.plugin == 'calico' else '') | json }}
        kube_proxy_mode: {{ env.kube_proxy.mode | json }}
        pod_network: {{ env.networks.pod | string | json }}
        service_network: {{ env.networks.service | string | json }}
        node_network: {{ env.networks.node | string | json }}
        cluster_domain: {{ env.cluster_domain | json }}
        api_endpoint: {{ ('127.0.0.1:' ~ env.api_port ~ ' on every node (brine-api-lb)') | json }}
        coredns: {{ (env.coredns | default(True)) | string | lower | json }}
        nodes: {{ nodes | json }}
        brine_version: {{ pillar.get('brine_version', 'unknown') | json }}

{#- cluster.upgrade, first on each node: the new kubeadm from the cluster's
    release line on the deploy node, Brine's kubeadm files and patches again,
    then kubeadm's own upgrade there (apply on the first master, node
    elsewhere). kubelet is left as it is: it is replaced after the drain
    (kubernetes.upgrade.kubelet). -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}

include:
  - kubernetes.configured

kubernetes-upgrade-kubeadm-installed:
  brine_prefetch.binary_installed:
    - name: {{ kubernetes.bin_dir }}/kubeadm
    - artifact: kubeadm
    - bundle_url: {{ kubernetes.bundle_url | json }}

kubernetes-upgraded-by-kubeadm:
  brine_kubeadm.upgraded:
    - name: {{ pillar.brine_node.name }}
    - version: {{ kubernetes.version }}
    - first_master: {{ kubernetes.is_first_master }}
    - control_plane: {{ kubernetes.is_master }}
    - patches_dir: {{ kubernetes.patches_dir }}
    - ignored_checks: {{ pillar.brine_kubeadm.upgrade_ignored_checks | json }}
    - require:
      - brine_prefetch: kubernetes-upgrade-kubeadm-installed
      - file: kubernetes-patches-only-brine

{#- kubelet and kubeadm on every node, kubectl on masters, crictl and the CNI
    plugins, from the bundle (through the node's prefetch cache, verified), and
    kubelet's systemd unit with kubeadm's drop-in. kubelet is enabled, not
    started: kubeadm starts it when the node joins. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}

include:
  - prefetch

{%- set binaries = ['kubeadm', 'kubelet'] + (['kubectl'] if kubernetes.is_master else []) %}
{%- for binary in binaries %}

kubernetes-{{ binary }}-installed:
  brine_prefetch.binary_installed:
    - name: {{ kubernetes.bin_dir }}/{{ binary }}
    - artifact: {{ binary }}
    - bundle_url: {{ kubernetes.bundle_url | json }}
    - require:
      - sls: prefetch
{%- endfor %}

kubernetes-crictl-installed:
  brine_prefetch.binary_installed:
    - name: {{ kubernetes.bin_dir }}
    - artifact: crictl
    - bundle_url: {{ kubernetes.bundle_url | json }}
    - extract: True
    - require:
      - sls: prefetch

kubernetes-cni-plugins-installed:
  brine_prefetch.binary_installed:
    - name: {{ kubernetes.cni_bin_dir }}
    - artifact: cni-plugins
    - bundle_url: {{ kubernetes.bundle_url | json }}
    - extract: True
    - require:
      - sls: prefetch

kubernetes-crictl-configured:
  file.managed:
    - name: /etc/crictl.yaml
    - contents: |
        # Managed by Brine (salt://kubernetes)
        runtime-endpoint: unix:///run/containerd/containerd.sock
        image-endpoint: unix:///run/containerd/containerd.sock
        timeout: 10

kubernetes-kubelet-unit-installed:
  file.managed:
    - names:
      - /etc/systemd/system/kubelet.service:
        - source: salt://kubernetes/files/kubelet.service
      - /etc/systemd/system/kubelet.service.d/10-kubeadm.conf:
        - source: salt://kubernetes/files/10-kubeadm.conf
    - makedirs: True
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: kubernetes-kubelet-unit-installed

kubernetes-kubelet-enabled:
  service.enabled:
    - name: kubelet
    - require:
      - file: kubernetes-kubelet-unit-installed
      - brine_prefetch: kubernetes-kubelet-installed

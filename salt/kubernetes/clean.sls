{#- A node leaves Kubernetes (cluster.node_remove, after it was drained and
    before it is deleted from the API): kubeadm reset (its static pods, the
    API load balancer's included, kubelet's credentials and certificates),
    kubelet stopped and disabled, Brine's kubeadm and load balancer files gone.
    The binaries stay. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}

kubernetes-node-reset:
  cmd.run:
    - name: kubeadm reset -f --cri-socket=unix:///run/containerd/containerd.sock
    - onlyif: test -e /etc/kubernetes/kubelet.conf -o -e /etc/kubernetes/manifests/kube-apiserver.yaml -o -e {{ kubernetes.lb.manifest }}

kubernetes-kubelet-dead:
  service.dead:
    - name: kubelet
    - enable: False
    - require:
      - cmd: kubernetes-node-reset

kubernetes-brine-files-absent:
  file.absent:
    - names:
      - {{ kubernetes.lb.manifest }}
      - {{ kubernetes.lb.config_dir }}
      - /etc/kubernetes/brine
    - require:
      - service: kubernetes-kubelet-dead

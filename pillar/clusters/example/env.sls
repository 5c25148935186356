# env: the cluster-wide settings of cluster "example" (the seed's env file).
# Every key, its type, default and meaning: docs/pillar.md.
# Check it with: salt-run cluster.validate example
env:
  # The cluster's name; must equal this folder's name. Minion ids are <node>.<name>.
  name: example
  # A version of a supported release line (salt-run cluster.validate lists them).
  kubernetes_version: "1.37.2"
  # containerd (default) or docker.
  runtime: containerd
  network:
    # calico (default) or host-gw (bridge + routes; all nodes on one L2 network).
    plugin: calico
    calico:
      # vxlan (default) or bgp. The bgp block below is allowed only in bgp mode.
      mode: bgp
      bgp:
        as_number: 64512
        peers:
          - address: 192.168.10.1
            as_number: 64501
  kube_proxy:
    # ipvs (default) or iptables.
    mode: ipvs
  networks:
    # Every node address is inside this network.
    node: 192.168.10.0/24
    # Pod and service networks must not overlap each other or the node network.
    pod: 10.244.0.0/16
    service: 10.96.0.0/12
  cluster_domain: cluster.local
  api_port: 6443
  bundle:
    # The deploy node's file server (OS packages, binaries) and image registry.
    # Nodes reach these two and nothing else outside the cluster.
    url: http://192.168.10.2:8080/
    registry: 192.168.10.2:5000
  ssh:
    # The one node the deploy node reaches by SSH; all others go through it.
    jump_host: master1
    user: root
    # Relative paths start at the repository root.
    private_key: /root/.ssh/id_ed25519
    port: 22
  kubeadm:
    # Extra flags for each component (name: value, without the leading --).
    extra_args:
      apiserver:
        audit-log-maxage: "30"
      controller_manager: {}
      scheduler: {}
      kubelet:
        max-pods: "150"
    # Strategic-merge patches for what kubeadm's API does not expose, by target.
    patches:
      kube-apiserver:
        - spec:
            containers:
              - name: kube-apiserver
                resources:
                  requests:
                    cpu: 500m
  # The day-2 agent (docs/day2.md): salt-master on the masters, salt-minion everywhere.
  day2:
    agent: true
    highstate_minutes: 30
    report_only: false
    cert_warn_days: 30
    # true makes this the control cluster: its masters also hold every other
    # cluster declared here and deploy them (docs/day2.md, "Many clusters").
    control: false
  # cluster.upgrade: workers drained and upgraded two at a time.
  upgrade:
    worker_batch: 2
    drain_seconds: 300

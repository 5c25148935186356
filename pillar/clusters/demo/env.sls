# The demo cluster: 3 masters + 2 workers on the local testbed (make demo).
# Every key is explained in docs/pillar.md; pillar/clusters/example/ shows them all.
env:
  name: demo
  kubernetes_version: "1.37.2"
  runtime: containerd
  network:
    plugin: host-gw
  kube_proxy:
    mode: iptables
  networks:
    node: 10.77.0.0/24
    pod: 10.244.0.0/16
    service: 10.96.0.0/16
  cluster_domain: cluster.local
  # The testbed has no name server: CoreDNS answers cluster names only.
  upstream_dns: []
  api_port: 6443
  bundle:
    url: http://10.77.0.1:8080/
    registry: 10.77.0.1:5000
  ssh:
    jump_host: master1
    user: root
    private_key: .brine/testbed/id_ed25519

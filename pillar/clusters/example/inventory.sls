# inventory: the nodes of cluster "example" (the seed's inventory file).
# roles: master (control plane), worker, etcd (an odd number of members).
inventory:
  nodes:
    - name: master1
      address: 192.168.10.11
      roles: [master, etcd]
      # Optional: the SSH host key fingerprint (ssh-keygen -lf); cluster.trust then
      # accepts only this key for the node.
      host_key_fingerprint: SHA256:Ytn4LPcl2OXmaFI4ySzgYNrxTIdcIIEbaxfUFuTJYb0
    - name: master2
      address: 192.168.10.12
      roles: [master, etcd]
    - name: master3
      address: 192.168.10.13
      roles: [master, etcd]
    - name: worker1
      address: 192.168.10.21
      roles: [worker]
      labels:
        topology.kubernetes.io/zone: room-a
    - name: worker2
      address: 192.168.10.22
      roles: [worker]
      taints:
        - key: dedicated
          value: storage
          effect: NoSchedule

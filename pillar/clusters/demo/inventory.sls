# The demo cluster's nodes. master1 is the only node the deploy side can SSH to.
inventory:
  nodes:
    - name: master1
      address: 10.77.0.11
      roles: [master, etcd]
    - name: master2
      address: 10.77.0.12
      roles: [master, etcd]
    - name: master3
      address: 10.77.0.13
      roles: [master, etcd]
    - name: worker1
      address: 10.77.0.21
      roles: [worker]
    - name: worker2
      address: 10.77.0.22
      roles: [worker]

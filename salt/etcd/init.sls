{#- etcd on an etcd member, in lifecycle order: Debian's packages from the
    offline repository, TLS certificates and Brine's flags, the service and the
    cluster's health gate, and snapshots on a timer. Applied to all members at
    once (cluster.deploy step cluster-etcd-healthy): a member is ready only
    when the others have joined too. -#}
include:
  - etcd.installed
  - etcd.configured
  - etcd.running
  - etcd.backup

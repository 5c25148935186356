{#- The cluster's bootstrap token valid for a join now (made again, short-lived,
    when it has less than 30 minutes left); on a master, for cluster.node_add. -#}

kubernetes-bootstrap-token-valid:
  brine_kubeadm.token_valid:
    - name: bootstrap token
    - ttl: 1h

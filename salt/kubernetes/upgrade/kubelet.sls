{#- cluster.upgrade, on a drained node: kubelet (and kubectl on masters) of
    the cluster's version, and kubelet restarted onto it. The restart is
    decided by the running process, not by this run's changes: a kubelet still
    running a binary since replaced (its /proc/<pid>/exe "(deleted)") is
    restarted, so a run cut off between the two converges. -#}
include:
  - kubernetes.installed

kubernetes-upgrade-kubelet-restarted:
  cmd.run:
    - name: systemctl daemon-reload && systemctl restart kubelet
    - onlyif: >-
        pid=$(systemctl show --property MainPID --value kubelet);
        [ "$pid" = 0 ] || readlink /proc/$pid/exe | grep -q '(deleted)'
    - require:
      - brine_prefetch: kubernetes-kubelet-installed
      - service: kubernetes-kubelet-enabled

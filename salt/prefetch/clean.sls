{#- Forget prefetched binaries; images stay in containerd (remove them with the runtime). -#}
prefetched-binaries-absent:
  file.absent:
    - name: /var/cache/brine/binaries

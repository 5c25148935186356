{#- Stop using the offline repository. Other sources are not restored: they were
    unreachable on an air-gapped node; put back what your site uses. -#}
offline-repo-source-absent:
  file.absent:
    - name: /etc/apt/sources.list.d/brine.list

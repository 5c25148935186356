bundle-ca-absent:
  file.absent:
    - name: /usr/local/share/ca-certificates/brine-bundle-ca.crt
  cmd.run:
    - name: update-ca-certificates --fresh
    - onchanges:
      - file: bundle-ca-absent

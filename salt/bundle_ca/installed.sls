{#- The CA that signed the deploy node's registry (and file server) certificate,
    trusted system-wide (curl, apt over https, skopeo) and by containerd. -#}
bundle-ca-installed:
  file.managed:
    - name: /usr/local/share/ca-certificates/brine-bundle-ca.crt
    - contents_pillar: brine_secrets:bundle_ca_crt
    - mode: "0644"
  cmd.run:
    - name: update-ca-certificates
    - onchanges:
      - file: bundle-ca-installed

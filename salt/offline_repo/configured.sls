{#- apt reads the bundle's repository on the deploy node's file server and no
    other source: every other sources file is removed. The repository's Release
    and Packages files carry the sha256 of every index and package, which apt
    checks before it installs anything. -#}
{%- from "offline_repo/map.jinja" import offline_repo with context %}

offline-repo-source-managed:
  file.managed:
    - name: {{ offline_repo.list_file }}
    - contents: |
        # Managed by Brine: the offline bundle on the deploy node is the only package source.
        deb [trusted=yes] {{ offline_repo.url }} ./

offline-repo-other-sources-absent:
  file.directory:
    - name: /etc/apt/sources.list.d
    - clean: True
    - require:
      - file: offline-repo-source-managed

offline-repo-main-list-emptied:
  file.managed:
    - name: /etc/apt/sources.list
    - contents: "# Managed by Brine: sources are in sources.list.d/brine.list only.\n"

offline-repo-index-current:
  cmd.run:
    - name: apt-get -q update
    - onchanges:
      - file: offline-repo-source-managed
      - file: offline-repo-other-sources-absent
      - file: offline-repo-main-list-emptied

{#- etcd-server and etcd-client from the offline repository.

    Debian's package enables and starts etcd.service as it installs, with its
    own defaults (a single-member cluster on localhost, data in
    /var/lib/etcd/default). Brine keeps Debian's unit and gives it Brine's
    flags in a drop-in (configured.sls), but that drop-in needs the etcd user
    and certificates which only exist after the install. So before the first
    install the unit is masked: the postinst's start is refused (a masked unit
    is not started, and deb-systemd-helper lifts only masks it made itself),
    nothing is written under /var/lib/etcd, and running.sls unmasks the unit
    once it is configured. Once the package is installed this mask is never
    made again. -#}
{%- from "etcd/map.jinja" import etcd with context %}

include:
  - offline_repo

etcd-packaged-service-masked-until-configured:
  cmd.run:
    - name: systemctl mask {{ etcd.service }}.service
    - unless: >-
        test "$(dpkg-query -W -f='${db:Status-Status}' {{ etcd.packages[0] }} 2>/dev/null)" = installed

etcd-packages-installed:
  pkg.installed:
    - pkgs: {{ etcd.packages | json }}
    - require:
      - sls: offline_repo
      - cmd: etcd-packaged-service-masked-until-configured

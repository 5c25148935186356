{#- Undo os_base: the boot-time module and sysctl files go (live values stay
    until the next boot), swap lines come back into /etc/fstab (swap itself is
    not turned on). Packages stay: iptables and friends may predate Brine, and
    the host entries may be wanted; remove them by hand if not. -#}
{%- from "os_base/map.jinja" import os_base with context %}

os-swap-back-in-fstab:
  file.replace:
    - name: /etc/fstab
    - pattern: '^# brine: swap off for kubelet: (.*)$'
    - repl: '\1'
    - ignore_if_missing: True

os-boot-settings-absent:
  file.absent:
    - names:
      - {{ os_base.sysctl_file }}
      - {{ os_base.modules_load_file }}

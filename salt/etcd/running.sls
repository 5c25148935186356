{#- etcd running on this member, and the health gate: every member the
    inventory lists healthy over TLS (etcdctl endpoint health --cluster with
    the health-check client certificate), retried for a bounded time. etcd is
    restarted when its certificates or flags change. -#}
{%- from "etcd/map.jinja" import etcd with context %}

include:
  - etcd.configured

etcd-service-running:
  service.running:
    - name: {{ etcd.service }}
    - enable: True
    - unmask: True
    - watch:
      - file: etcd-pki-files-managed
      - file: etcd-service-flags-managed
      - module: etcd-service-flags-managed
    - require:
      - file: etcd-data-dir-present

etcd-cluster-healthy:
  brine_etcd.healthy:
    - members: {{ etcd.client_urls | json }}
    - endpoint: {{ etcd.local_client_url }}
    - cacert: {{ etcd.tls.ca }}
    - cert: {{ etcd.tls.client_crt }}
    - key: {{ etcd.tls.client_key }}
    - timeout: {{ etcd.health_timeout }}
    - require:
      - service: etcd-service-running

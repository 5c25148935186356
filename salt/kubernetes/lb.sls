{#- The distributed API load balancer: nginx on 127.0.0.1:<api_port> of every
    node, every master's API server as upstream, as a static pod kubelet runs.
    Its configuration and the cluster CA it checks API servers with sit in
    their own folder; the manifest carries the configuration's checksum, so a
    change of masters replaces the pod with no manual restart. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}

kubernetes-lb-config-dir-present:
  file.directory:
    - name: {{ kubernetes.lb.config_dir }}
    - makedirs: True
    - mode: "0755"

kubernetes-lb-config-managed:
  file.managed:
    - names:
      - {{ kubernetes.lb.config_dir }}/nginx.conf:
        - source: salt://kubernetes/files/nginx.conf.j2
        - template: jinja
        - context:
            kubernetes: {{ kubernetes | json }}
      - {{ kubernetes.lb.config_dir }}/ca.crt:
        - contents_pillar: brine_secrets:kubernetes:ca_crt
    - mode: "0644"
    - require:
      - file: kubernetes-lb-config-dir-present

kubernetes-lb-manifest-managed:
  file.managed:
    - name: {{ kubernetes.lb.manifest }}
    - source: salt://kubernetes/files/brine-api-lb.yaml.j2
    - template: jinja
    - makedirs: True
    - mode: "0600"
    - context:
        kubernetes: {{ kubernetes | json }}
    - require:
      - file: kubernetes-lb-config-managed

{#- The distributed API load balancer: nginx on 127.0.0.1:<api_port> of every
    node, every master's API server as upstream, as a static pod kubelet runs.
    Its configuration and the cluster CA it checks API servers with sit in
    their own folder (mounted as a folder, so the pod sees every rewrite); a
    change of masters rewrites the configuration and reloads nginx in the
    running pod (nginx -s reload: in place, no connection dropped). -#}
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

{#- A new configuration reaches the running nginx by a reload (checked first with
    nginx -t); with no LB container running yet, kubelet starts it on the new file. #}
kubernetes-lb-reload-script-installed:
  file.managed:
    - name: /usr/local/sbin/brine-lb-reload
    - mode: "0755"
    - contents: |
        #!/bin/sh
        # Managed by Brine (salt://kubernetes/lb.sls): reload the API load balancer's
        # nginx in its running container, after checking the new configuration.
        set -eu
        crictl={{ kubernetes.bin_dir }}/crictl
        conf={{ kubernetes.lb.config_dir }}/nginx.conf
        cid=$($crictl ps -q --name '^nginx$' --label io.kubernetes.pod.namespace=kube-system \
            --label io.kubernetes.pod.name=brine-api-lb-{{ pillar.brine_node.name }} | head -1)
        if [ -z "$cid" ]; then
            echo "no load balancer container running: kubelet starts it on the new configuration"
            exit 0
        fi
        $crictl exec "$cid" /usr/sbin/nginx -c "$conf" -t
        $crictl exec "$cid" /usr/sbin/nginx -c "$conf" -s reload
        echo "nginx reloaded in container $cid"

kubernetes-lb-reloaded:
  cmd.run:
    - name: /usr/local/sbin/brine-lb-reload
    - onchanges:
      - file: kubernetes-lb-config-managed
    - require:
      - file: kubernetes-lb-manifest-managed
      - file: kubernetes-lb-reload-script-installed

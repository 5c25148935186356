{#- The container runtime the cluster declares: env.runtime (containerd or docker). -#}
include:
  - {{ pillar.env.runtime }}

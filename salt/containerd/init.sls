include:
  - containerd.installed
  - containerd.configured
  - containerd.running

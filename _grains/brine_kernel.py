"""
Grains about what the kernel lets this node do, for settings that depend on it.

- ``brine_oom_score_lowerable``: whether a process may lower its OOM score
  (it needs CAP_SYS_RESOURCE; nested and some container environments lack it).
  containerd must then not try (``restrict_oom_score_adj``).

CLI Example:

.. code-block:: bash

    salt-ssh '*.demo' grains.item brine_oom_score_lowerable
"""

import subprocess


def brine_kernel():
    """The kernel-permission grains."""
    probe = subprocess.run(
        ["/bin/sh", "-c", "echo -1 > /proc/self/oom_score_adj"],
        capture_output=True, check=False, timeout=10,
    )
    return {"brine_oom_score_lowerable": probe.returncode == 0}

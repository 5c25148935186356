"""
Print a list of strings one per line, as Brine's runners report problems and
progress (``<field path>: <what is wrong> (<what is accepted>)``).

CLI Example:

.. code-block:: bash

    salt-run cluster.validate demo --out brine_lines
"""

import salt.output

__virtualname__ = "brine_lines"


def __virtual__():
    return __virtualname__


def output(data, **kwargs):  # pylint: disable=unused-argument
    """A runner report's ``lines`` as they are; anything else through the nested outputter."""
    if isinstance(data, dict) and isinstance(data.get("lines"), list):
        return "\n".join(str(line) for line in data["lines"])
    return salt.output.out_format(data, "nested", __opts__, **kwargs)

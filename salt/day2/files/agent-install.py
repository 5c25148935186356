"""
Managed by Brine (salt://day2): installs the day-2 agent prebuilt by bundle.build.

    python3 agent-install.py <archive URL> <install folder>

Fetches the archive and its .sha256 from the deploy node's file server,
checks the archive against it, unpacks it beside the install folder, checks
that its salt runs, then swaps it in and marks the folder with the archive's
name. An install folder already marked with that name is left as it is. Needs
nothing but Python 3.11's standard library: salt://day2/installed.sls runs it
on nodes, and the masters' minion-bootstrap.sh on a machine not yet a node.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

#: The only link target from outside the archive: the nodes' interpreter.
OUTSIDE_LINKS = ("/usr/bin/python3", "/usr/bin/python3.11")
ATTEMPTS = 3


def fetch(url, dest):
    """Download url to dest, a few tries (the file server may be restarting); return its sha256."""
    for attempt in range(1, ATTEMPTS + 1):
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()
        except OSError as error:
            if attempt == ATTEMPTS:
                sys.exit(f"agent-install: cannot fetch {url}: {error}")
            time.sleep(2 * attempt)
    return ""


def check_members(tar, folder):
    """Refuse anything that would land outside folder, or link outside it but to the nodes' python."""
    for member in tar.getmembers():
        path = os.path.realpath(os.path.join(folder, member.name))
        if not path.startswith(folder + os.sep) and path != folder:
            sys.exit(f"agent-install: refusing archive member {member.name!r} (outside the install folder)")
        if member.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(path), member.linkname))
            if member.linkname not in OUTSIDE_LINKS and not target.startswith(folder + os.sep):
                sys.exit(f"agent-install: refusing link {member.name!r} -> {member.linkname!r}")
        if member.isdev() or member.islnk():
            sys.exit(f"agent-install: refusing special member {member.name!r}")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: python3 agent-install.py <archive URL> <install folder>")
    url, folder = sys.argv[1], os.path.abspath(sys.argv[2])
    name = url.rsplit("/", 1)[-1]
    marker = os.path.join(folder, "." + name)
    if os.path.exists(marker):
        print(f"agent {name} is installed in {folder} already")
        return
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".agent-", dir=parent)
    try:
        archive = os.path.join(scratch, name)
        sums = os.path.join(scratch, name + ".sha256")
        fetch(url + ".sha256", sums)
        with open(sums, encoding="utf-8") as handle:
            fields = handle.read().split()
        if len(fields) != 2 or fields[1] != name or len(fields[0]) != 64:
            sys.exit(f"agent-install: {url}.sha256 does not name {name} with a sha256")
        got = fetch(url, archive)
        if got != fields[0]:
            sys.exit(f"agent-install: {url}: sha256 mismatch: expected {fields[0]}, got {got}")
        staged = os.path.join(scratch, "agent")
        os.mkdir(staged)
        with tarfile.open(archive) as tar:
            check_members(tar, staged)
            tar.extractall(staged)
        os.unlink(archive)
        version = subprocess.run([os.path.join(staged, "bin", "python"), "-c",
                                  "import salt.version; print(salt.version.__version__)"],
                                 capture_output=True, text=True, check=False)
        if version.returncode != 0:
            sys.exit(f"agent-install: the unpacked agent does not run: {version.stderr.strip()[-1000:]}")
        with open(os.path.join(staged, "." + name), "w", encoding="utf-8") as handle:
            handle.write(fields[0] + "\n")
        old = os.path.join(scratch, "old")
        if os.path.lexists(folder):
            os.rename(folder, old)
        os.rename(staged, folder)
        print(f"agent {name} (salt {version.stdout.strip()}) installed in {folder}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

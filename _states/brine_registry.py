"""
Every image of the current bundle present in the private registry, under its
public name without the registry host (``registry.k8s.io/pause:3.10.2`` is
``<registry>/pause:3.10.2``), with the digest the bundle's index records.

Example:

.. code-block:: yaml

    bundle-images-pushed:
      brine_registry.images_pushed:
        - name: 10.77.0.1:5000
        - bundle: /srv/brine/bundles/current
        - ca_file: /usr/local/share/ca-certificates/brine-bundle-ca.crt
        - credentials_pillar: brine_secrets
"""

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request

import brine_bundle_layout
import salt.utils.data
import salt.utils.secret

__virtualname__ = "brine_registry"

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


def __virtual__():
    return __virtualname__


def _registry_digest(registry, repository, tag, context, auth):
    """The digest the registry holds for repository:tag, or None when it has none."""
    request = urllib.request.Request(
        f"https://{registry}/v2/{repository}/manifests/{tag}", method="HEAD",
        headers={"Accept": MANIFEST_TYPES, "Authorization": auth},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def _push(archive, destination, authfile, ca_dir):
    return subprocess.run(
        ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-authfile", authfile,
         "--dest-cert-dir", ca_dir, f"oci-archive:{archive}", f"docker://{destination}"],
        capture_output=True, text=True, timeout=1800, check=False,
    )


def images_pushed(name, bundle, ca_file, credentials_pillar="brine_secrets"):
    """
    Ensure the registry ``name`` (host:port) holds every image of the unpacked
    bundle ``bundle`` with the digest of the bundle's index. Images already
    there are left alone; the rest are copied with skopeo, digests preserved.
    Credentials reach skopeo through a 0600 auth file, never its command line.

    name
        The registry, host:port.
    bundle
        The unpacked bundle folder (holding index.json).
    ca_file
        The CA certificate the registry's TLS certificate is signed by.
    credentials_pillar
        The pillar key holding ``registry_username`` and ``registry_password``
        (read here, so the password is never a state argument).
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    # pillar.get masks secrets (Salt 3008); read the pillar itself, unmasked, and keep it here.
    credentials = salt.utils.secret.expose(
        salt.utils.data.traverse_dict_and_list(__pillar__, credentials_pillar, {}))
    username, password = credentials.get("registry_username"), credentials.get("registry_password")
    if not (username and password):
        ret["comment"] = (f"no registry credentials in pillar {credentials_pillar} "
                          "(the deploy side makes them: salt-run cluster.secrets <cluster>)")
        return ret
    index = brine_bundle_layout.read_index(bundle)
    images = [a for a in index["artifacts"] if a["kind"] == "image"]
    context = ssl.create_default_context(cafile=ca_file)
    auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    missing, problems = [], []
    for image in images:
        rest = image["url"].removeprefix("docker://").split("/", 1)[1]
        repository, tag = rest.rsplit(":", 1)
        try:
            have = _registry_digest(name, repository, tag, context, auth)
        except (urllib.error.URLError, OSError) as error:
            ret["comment"] = f"registry {name} does not answer over TLS with these credentials: {error}"
            return ret
        if have != image["sum"]:
            missing.append((image, repository, tag, have))
    if not missing:
        ret.update(result=True, comment=f"all {len(images)} images of bundle {index['bundle_id']} are in {name}")
        return ret
    names = [f"{name}/{repository}:{tag}" for _, repository, tag, _ in missing]
    if __opts__["test"]:
        ret.update(result=None, comment=f"{len(missing)} of {len(images)} images would be pushed",
                   changes={"pushed": names})
        return ret
    with tempfile.TemporaryDirectory() as scratch:
        authfile = os.path.join(scratch, "auth.json")
        fd = os.open(authfile, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"auths": {name: {"auth": auth.removeprefix("Basic ")}}}, handle)
        ca_dir = os.path.join(scratch, "certs")
        os.mkdir(ca_dir)
        with open(ca_file, encoding="ascii") as source, open(os.path.join(ca_dir, "ca.crt"), "w") as dest:
            dest.write(source.read())
        pushed = []
        for (image, repository, tag, _), destination in zip(missing, names, strict=True):
            proc = _push(os.path.join(bundle, image["path"]), destination, authfile, ca_dir)
            if proc.returncode != 0:
                problems.append(f"{image['url']} -> {destination}: {proc.stderr.strip()}")
                continue
            have = _registry_digest(name, repository, tag, context, auth)
            if have != image["sum"]:
                problems.append(f"{destination}: registry holds {have}, the bundle {image['sum']}")
                continue
            pushed.append(destination)
    ret["changes"] = {"pushed": pushed} if pushed else {}
    if problems:
        ret["comment"] = f"pushed {len(pushed)} of {len(missing)} images; failed:\n" + "\n".join(problems)
        return ret
    ret.update(result=True, comment=f"pushed {len(pushed)} images to {name} ({len(images) - len(missing)} already there)")
    return ret

"""The deployment recipe (deploy/): the image's entry command, run here as the container runs it,
and the Dockerfile and Kubernetes manifests held against the code they deploy. No image is built
and nothing is applied to a cluster (docs/deploying.md says what that leaves unchecked)."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cadenza.errors import ConfigError
from cadenza.paths import config_dir
from cadenza.serve.auth import key_entry, new_key, parse_keys
from cadenza.serve.settings import ServeSettings
from tests.fixtures.smoke import SmokeRuns

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
BIN = Path(sys.executable).parent
HEADER = "# @package _global_"


# --- reading the recipe ---------------------------------------------------------------------
def manifests() -> dict[str, list[dict[str, Any]]]:
    """deploy/k8s/*.yaml but the kustomization: file name -> its objects."""
    return {
        p.name: [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        for p in sorted(K8S.glob("*.yaml"))
        if p.name != "kustomization.yaml"
    }


def the(kind: str) -> dict[str, Any]:
    found = [d for docs in manifests().values() for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod() -> dict[str, Any]:
    return the("Deployment")["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (only,) = pod()["containers"]
    return only


def configmap_text() -> str:
    return the("ConfigMap")["data"]["serve.yaml"]


def image_text() -> str:
    return (DEPLOY / "serve.yaml").read_text()


def dockerfile() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    out, pending = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def instructions(word: str) -> list[str]:
    return [rest for w, rest in dockerfile() if w == word]


def arg_default(name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in instructions("ARG") if a.startswith(f"{name}=")]
    return value.strip('"')


def copies() -> list[tuple[list[str], str, dict[str, str]]]:
    """Each COPY as (sources, destination, flags)."""
    out = []
    for rest in instructions("COPY"):
        words = rest.split()
        flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
        paths = [w for w in words if not w.startswith("--")]
        out.append((paths[:-1], paths[-1], flags))
    return out


def site_dir() -> str:
    """Where the image looks for deploy/serve.yaml: the entry script's default, which the
    Dockerfile's ENV must agree with."""
    (default,) = re.findall(r"\$\{CADENZA_SITE_CONFIG:-([^}]+)\}", ENTRYPOINT.read_text())
    env = " ".join(instructions("ENV"))
    assert f"CADENZA_SITE_CONFIG={default}" in env
    return default


def app_routes() -> set[str]:
    """The GET paths the service declares (src/cadenza/serve/)."""
    text = "".join(p.read_text() for p in (ROOT / "src/cadenza/serve").glob("*.py"))
    return set(re.findall(r"@app\.get\(\s*\"([^\"]+)\"", text))


def keys_yaml(key: str) -> str:
    return yaml.safe_dump({"keys": [key_entry("platform", key, ["generate", "recommend"], None)]})


def settings_of(text: str, checkpoints: Path, work: Path) -> ServeSettings:
    data = yaml.safe_load(text)
    return ServeSettings.from_dict({**data, "checkpoints": str(checkpoints), "work_dir": str(work)})


# --- the manifests --------------------------------------------------------------------------
def test_every_manifest_parses_names_itself_and_is_in_the_kustomization() -> None:
    found = manifests()
    kinds = sorted(d["kind"] for docs in found.values() for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "PersistentVolumeClaim",
                     "Secret", "Service"]  # fmt: skip
    for name, docs in found.items():
        for doc in docs:
            assert doc["apiVersion"] and doc["metadata"]["name"], name
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(found)
    images = {i["name"] for i in kustomization["images"]}
    assert container()["image"].split(":")[0] in images


def test_the_probes_ask_paths_the_service_serves() -> None:
    routes = app_routes()
    assert {"/api/live", "/api/ready", "/api/health"} <= routes  # the grep finds the routes
    c = container()
    assert c["livenessProbe"]["httpGet"]["path"] == "/api/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/ready"
    assert c["startupProbe"]["httpGet"]["path"] in routes
    # Model loading happens before the port opens: the startup probe must allow for it.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    (healthcheck,) = instructions("HEALTHCHECK")
    assert re.search(r"http://127\.0\.0\.1:\d+(/\S*?)'", healthcheck).group(1) in routes


def test_the_ports_line_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENZA_API_KEYS", keys_yaml(new_key()))
    settings = settings_of(configmap_text(), tmp_path, tmp_path / "work")
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": settings.port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] in ("http", settings.port)
    service = the("Service")["spec"]
    (port,) = service["ports"]
    target = port["targetPort"]
    assert ports.get(target, target) == settings.port
    labels = the("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert the("Deployment")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert instructions("EXPOSE") == [str(settings.port)]
    assert yaml.safe_load(image_text())["port"] == settings.port
    (healthcheck,) = instructions("HEALTHCHECK")
    assert f"127.0.0.1:{settings.port}/" in healthcheck


@pytest.mark.parametrize("source", ["configmap", "image"])
def test_the_site_settings_are_real_settings(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = configmap_text() if source == "configmap" else image_text()
    assert text.splitlines()[0] == HEADER  # else Hydra puts every key under `deploy.`
    data = yaml.safe_load(text)
    assert {"checkpoints", "work_dir", "host", "port"} <= set(data)
    monkeypatch.setenv("CADENZA_API_KEYS", keys_yaml(new_key()))
    settings = settings_of(text, tmp_path, tmp_path / "work")
    assert settings.host == data["host"] and settings.port == data["port"]
    with pytest.raises(ConfigError, match="unknown serve setting"):  # what makes this a check
        ServeSettings.from_dict({**data, "checkpoints": str(tmp_path), "not_a_setting": 1})
    assert set(the("ConfigMap")["data"]) == {"serve.yaml"}


def test_env_volumes_and_user_match_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENZA_API_KEYS", keys_yaml(new_key()))
    data = yaml.safe_load(configmap_text())
    settings = settings_of(configmap_text(), tmp_path, tmp_path / "work")
    c, spec = container(), pod()
    secret = the("Secret")
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert set(env) == {settings.keys_env, settings.pseudonym_key_env}
    for ref in env.values():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    claims = {d["metadata"]["name"] for d in manifests()["pvc.yaml"]}

    def claim(path: str) -> str:
        return volumes[mounts[path]["name"]]["persistentVolumeClaim"]["claimName"]

    assert claim(data["checkpoints"]) in claims and mounts[data["checkpoints"]]["readOnly"]
    assert claim(data["work_dir"]) in claims and not mounts[data["work_dir"]].get("readOnly")
    config = volumes[mounts[f"{site_dir()}/deploy"]["name"]]["configMap"]
    assert config["name"] == the("ConfigMap")["metadata"]["name"]
    assert config["items"] == [{"key": "serve.yaml", "path": "serve.yaml"}]
    # The image's own settings and its volumes agree with the cluster's.
    image = yaml.safe_load(image_text())
    assert (image["checkpoints"], image["work_dir"]) == (data["checkpoints"], data["work_dir"])
    (volume,) = instructions("VOLUME")
    assert set(yaml.safe_load(volume)) == {data["checkpoints"], data["work_dir"]}
    assert (["deploy/serve.yaml"], f"{site_dir()}/deploy/serve.yaml") in [
        (src, dest) for src, dest, _ in copies()
    ]
    # Non-root, the same user in both; a read-only root with /tmp writable for the caches.
    (user,) = instructions("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can check it
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(uid)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    env_lines = " ".join(instructions("ENV"))
    for var in ("HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"):
        assert re.search(rf"\b{var}=/tmp\b", env_lines), var
    # SIGTERM: running requests may finish before the kubelet kills the container.
    shutdown = getattr(settings, "shutdown_timeout_s", None)
    if shutdown is not None:
        assert spec["terminationGracePeriodSeconds"] > shutdown


def test_the_secret_holds_placeholder_keys_only() -> None:
    data = the("Secret")["stringData"]
    keys = parse_keys(data["keys.yaml"], "deploy/k8s/secret.yaml")
    assert keys and {k.name for k in keys} >= {"platform"}
    for entry in yaml.safe_load(data["keys.yaml"])["keys"]:
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
        assert len(set(entry["sha256"])) == 1  # a placeholder that no key hashes to
    assert data["pseudonym-key"] == ""  # never a real secret in the repository


# --- the Dockerfile, without docker ---------------------------------------------------------
def test_the_dockerfile_pins_torch_copies_files_that_exist_and_installs_a_wheel() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (torch_spec,) = re.findall(r"^TORCH_SPEC\s*\?=\s*(\S+)", makefile, re.MULTILINE)
    assert arg_default("TORCH_SPEC") == torch_spec
    assert arg_default("TORCH_INDEX") == "https://download.pytorch.org/whl/cpu"
    base = arg_default("PYTHON_IMAGE")
    assert re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", base)
    assert instructions("FROM") == ["${PYTHON_IMAGE} AS wheel", "${PYTHON_IMAGE}"]
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for sources, _, flags in copies():
        if "from" in flags:
            continue
        for src in sources:
            assert (ROOT / src).exists(), src
            assert f"!{src}" in ignore, f"{src} is left out of the build context"
    runs = " ".join(instructions("RUN"))
    assert "pip wheel" in runs and "/tmp/dist/*.whl" in runs
    assert not re.search(r"pip install[^&]*(-e |--editable)", runs)
    # The entry command is deploy/entrypoint.sh, copied where ENTRYPOINT runs it.
    (entry,) = instructions("ENTRYPOINT")
    (dest,) = [d for s, d, _ in copies() if s == ["deploy/entrypoint.sh"]]
    assert yaml.safe_load(entry) == [Path(dest).name] and dest.startswith("/usr/local/bin/")
    assert "exec cadenza-serve " in ENTRYPOINT.read_text()


# --- the entry command, run here as in the container ----------------------------------------
def site_config(root: Path, text: str, models: Path, work: Path) -> Path:
    """The ConfigMap's serve.yaml where the container finds it, laid out as the kubelet lays out
    a ConfigMap volume (the file a link into ..data/), its container paths swapped for tmp
    folders."""
    text, n = re.subn(r"(?m)^checkpoints: /models$", f"checkpoints: {models}", text)
    text, m = re.subn(r"(?m)^work_dir: /var/lib/cadenza$", f"work_dir: {work}", text)
    assert n == m == 1
    data = root / "site" / "deploy" / "..data"
    data.mkdir(parents=True)
    (data / "serve.yaml").write_text(text)
    (root / "site" / "deploy" / "serve.yaml").symlink_to("..data/serve.yaml")
    return root / "site"


def entry_env(site: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("CADENZA_API_KEYS", "CADENZA_PSEUDONYM_KEY"):
        env.pop(name, None)
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "HYDRA_FULL_ERROR": "0",
            "CADENZA_SITE_CONFIG": str(site), **extra}  # fmt: skip


def composed(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    proc = subprocess.run([*command, "--cfg", "job"], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_the_site_file_is_layered_over_the_packaged_defaults(tmp_path: Path) -> None:
    # A `deploy` group among the packaged configs would be found before the site's.
    assert not (config_dir() / "deploy").exists()
    site = site_config(tmp_path, configmap_text(), tmp_path / "models", tmp_path / "work")
    env = entry_env(site)
    packaged = composed([str(BIN / "cadenza-serve")], env, tmp_path)
    layered = composed([str(ENTRYPOINT)], env, tmp_path)
    overlay = yaml.safe_load((site / "deploy" / "serve.yaml").read_text())
    assert {k: layered[k] for k in overlay} == overlay
    assert {k: v for k, v in layered.items() if k not in overlay} == {
        k: v for k, v in packaged.items() if k not in overlay
    }
    assert packaged["sample"]["temperature"] is None and "top_p" in layered["sample"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a real process (torch's import alone is ~5 s)
def test_the_entry_command_serves_as_in_the_container(smoke: SmokeRuns, tmp_path: Path) -> None:
    models, work = tmp_path / "models", tmp_path / "work"
    (models / "smoke").mkdir(parents=True)
    shutil.copyfile(smoke["smoke"].ckpt, models / "smoke" / "latest.ckpt")
    site = site_config(tmp_path, configmap_text(), models, work)
    key = new_key()
    env = entry_env(site, CADENZA_API_KEYS=keys_yaml(key), CADENZA_PSEUDONYM_KEY="0" * 64)
    # The ConfigMap's host (0.0.0.0) is kept, so that the keys rule it triggers is the real
    # one; its port is swapped for a free one (a pod has 8000 to itself, this machine may not).
    port = free_port()
    # A session of its own: whatever it leaves behind (a server a shell did not exec) is killed.
    proc = subprocess.Popen([str(ENTRYPOINT), f"port={port}"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any("cadenza-serve: listening on" in line for line in seen):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(seen[-40:])
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        assert f"listening on http://0.0.0.0:{port} (1 model)" in "".join(seen)
        # exec: the process the container's runtime signals is the server itself.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert any(part.endswith(b"cadenza-serve") for part in cmdline), (
            f"deploy/entrypoint.sh must exec cadenza-serve; pid {proc.pid} runs {cmdline}"
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/api/ready").status_code == 200
            c = container()
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert http.get(c[probe]["httpGet"]["path"]).status_code == 200, probe
            assert http.get("/api/models").status_code == 401
            r = http.get("/api/models", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200 and "smoke" in r.text
            assert http.get("/api/health").json()["auth"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert code in (0, -signal.SIGTERM)
    with pytest.raises(httpx.ConnectError):  # gone, not left behind by a shell
        httpx.get(f"http://127.0.0.1:{port}/api/live", timeout=5)


@pytest.mark.slow  # a real process (torch's import alone is ~5 s)
def test_without_keys_the_entry_command_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    site = site_config(tmp_path, configmap_text(), tmp_path / "models", tmp_path / "work")
    proc = subprocess.run([str(ENTRYPOINT), "port=0"], env=entry_env(site), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "host=0.0.0.0" in proc.stderr and "CADENZA_API_KEYS" in proc.stderr
    assert "listening" not in proc.stdout

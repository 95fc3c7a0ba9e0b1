"""The Kubernetes pack every project ships (deploy/kubernetes/): `kubectl kustomize` renders its base and
both overlays, every object validates against the Kubernetes schemas (kubernetes-validate, strict; the
HTTPRoute against the Gateway API's own CRD schema, tests/data), and what a chat bot needs on a cluster
holds: probes on /health, sticky sessions and websocket timeouts, no secret value anywhere, non-root pods
on a read-only root filesystem, a disruption budget below the replicas, the schema migration as a Job.

kubectl is a system tool: under CI a missing one fails the module, elsewhere it skips it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .helpers import DATA, EXAMPLES, IN_CI, copier_render, example_id, template_runtime_module

#: The Kubernetes release the objects are validated against (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.30"
OVERLAYS = ("base", "overlays/production", "overlays/gateway")
#: The variables that hold secrets: the Deployment may take them from its Secret only.
SECRET_VARIABLES = frozenset({"BACKEND_API_SECRET", "DATABASE_URL", "CHAINLIT_AUTH_SECRET", "CUSTOMER_TOKEN_SECRET"})
#: Read by Chainlit itself (and identity.py), not by the bot's Settings.
CHAINLIT_VARIABLES = frozenset({"CHAINLIT_AUTH_SECRET"})
#: Values of the secret variables in the environment kustomize runs in: none may reach a manifest.
SENTINELS = {name: f"sentinel-{name.lower().replace('_', '-')}-{secrets.token_hex(8)}" for name in SECRET_VARIABLES}
#: The installed Chainlit, found without importing it (an import writes .chainlit/ into the working directory).
CHAINLIT_DIR = Path(importlib.util.find_spec("chainlit").origin).parent  # type: ignore[union-attr, arg-type]
HTTPROUTE_SCHEMA = DATA / "gateway-api-httproute-v1.schema.json"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
PERSISTENCE_FLUSH_SECONDS = 8  # the bot finishes queued database writes for up to this long at shutdown


@dataclass(frozen=True)
class Build:
    """One `kubectl kustomize` output: its text and its objects."""

    text: str
    objects: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [item for item in self.objects if item["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"{len(found)} objects of kind {kind}"
        return found[0]

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]


@dataclass(frozen=True)
class Pack:
    """A rendered project's Kubernetes pack, built for the base and each overlay."""

    project: Path
    builds: dict[str, Build]

    @property
    def brand(self) -> dict[str, Any]:
        return tomllib.loads((self.project / "brand.toml").read_text(encoding="utf-8"))

    @property
    def folder(self) -> Path:
        return self.project / "deploy/kubernetes"


@pytest.fixture(scope="module")
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        message = "kubectl is not installed: it renders the Kubernetes pack (kubectl kustomize)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def kustomize(kubectl: str, folder: Path) -> Build:
    """`kubectl kustomize folder`, with the secret variables set in its environment (to catch a leak)."""
    done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **SENTINELS})
    assert done.returncode == 0, done.stderr
    return Build(done.stdout, [item for item in yaml.safe_load_all(done.stdout) if item])


def build_pack(kubectl: str, project: Path) -> Pack:
    return Pack(project, {overlay: kustomize(kubectl, project / "deploy/kubernetes" / overlay) for overlay in OVERLAYS})


@pytest.fixture(scope="module")
def pack(rendered: Callable[[Path], Path], kubectl: str) -> Callable[[Path], Pack]:
    """The pack of an example brand, rendered and built once per module."""
    cache: dict[Path, Pack] = {}

    def get(brand_file: Path) -> Pack:
        if brand_file not in cache:
            cache[brand_file] = build_pack(kubectl, rendered(brand_file))
        return cache[brand_file]

    return get


def closed(schema: Any) -> Any:
    """A CRD's OpenAPI schema with every object that lists its properties refusing others, as the API
    server's field validation does (kubernetes-validate's strict schemas are made the same way)."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if (result.get("type") == "object" and "properties" in result and "additionalProperties" not in result
            and not result.get("x-kubernetes-preserve-unknown-fields")):
        result["additionalProperties"] = False
    return result


def validate(item: dict[str, Any]) -> None:
    """Validate one object: core kinds against Kubernetes' schemas, the HTTPRoute against the Gateway API CRD's."""
    if item["apiVersion"] == "gateway.networking.k8s.io/v1":
        assert item["kind"] == "HTTPRoute", item["kind"]
        schema = closed(json.loads(HTTPROUTE_SCHEMA.read_text(encoding="utf-8")))
        jsonschema.Draft202012Validator(schema).validate(item)
        return
    kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


def secret_name(pack: Pack) -> str:
    return f"{pack.builds['base'].one('Deployment')['metadata']['name']}-secrets"


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    return next(item["containerPort"] for item in container["ports"] if item["name"] == port)


def dockerfile(pack: Pack) -> str:
    return (pack.project / "Dockerfile").read_text(encoding="utf-8")


def dockerfile_uid(pack: Pack) -> int:
    match = re.search(r"useradd\b.*--uid (\d+) (\w+)", dockerfile(pack))
    assert match and re.search(rf"^USER {match.group(2)}$", dockerfile(pack), re.MULTILINE)
    return int(match.group(1))


def workdir(pack: Pack) -> str:
    match = re.search(r"^WORKDIR (\S+)$", dockerfile(pack), re.MULTILINE)
    assert match
    return match.group(1)


def labels_select(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_every_object_validates_against_the_kubernetes_schemas(pack: Callable[[Path], Pack], brand_file: Path) -> None:
    built = pack(brand_file)
    common = {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"}
    expected = {"base": common | {"Ingress"}, "overlays/production": common | {"Ingress"},
                "overlays/gateway": common | {"HTTPRoute"}}
    for overlay, build in built.builds.items():
        assert sorted(item["kind"] for item in build.objects) == sorted(expected[overlay]), overlay
        for item in build.objects:
            try:
                validate(item)
            except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
                path = ".".join(str(part) for part in error.absolute_path)
                pytest.fail(f"{overlay}: {item['kind']}/{item['metadata']['name']}: {path}: {error.message}")
            name = item["metadata"]["name"]
            assert DNS_SUBDOMAIN.fullmatch(name), name
            if item["kind"] in {"Service", "Job"}:
                assert DNS_LABEL.fullmatch(name), name  # a Service's name is a DNS label; a Job's a label value


def test_the_schema_check_catches_a_misspelled_field(pack: Callable[[Path], Pack]) -> None:
    """Both validators refuse a field that does not exist (a typo would otherwise pass unnoticed)."""
    built = pack(EXAMPLES[0]).builds["overlays/gateway"]
    deployment = json.loads(json.dumps(built.one("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFilesytem"):
        validate(deployment)
    route = json.loads(json.dumps(built.one("HTTPRoute")))
    route["spec"]["rules"][0]["sessionPersistence"]["cookieName"] = "x"
    with pytest.raises(jsonschema.ValidationError, match="cookieName"):
        validate(route)


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_the_probes_ask_health_on_the_chat_port(pack: Callable[[Path], Pack], brand_file: Path) -> None:
    built = pack(brand_file)
    assert '"--port", "8000"' in dockerfile(built) and "EXPOSE 8000" in dockerfile(built)
    for overlay, build in built.builds.items():
        container = build.container
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check = container[probe]["httpGet"]
            assert check["path"] == "/health", (overlay, probe)
            assert port_number(container, check["port"]) == 8000, (overlay, probe)
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60  # migrations run before /health


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_pods_run_as_the_images_user_on_a_read_only_root_filesystem(pack: Callable[[Path], Pack],
                                                                   brand_file: Path) -> None:
    built = pack(brand_file)
    uid = dockerfile_uid(built)
    writable = {f"{workdir(built)}/.files", "/tmp"}  # Chainlit's uploads, Python's temporary files
    for overlay, build in built.builds.items():
        for kind in ("Deployment", "Job"):
            pod = build.one(kind)["spec"]["template"]["spec"]
            context = pod["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == uid, (overlay, kind)
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, (overlay, kind)
            assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
            for container in pod["containers"]:
                own = container["securityContext"]
                assert own["readOnlyRootFilesystem"] is True, (overlay, kind)
                assert own["allowPrivilegeEscalation"] is False, (overlay, kind)
                assert own["capabilities"] == {"drop": ["ALL"]}, (overlay, kind)
                assert own.get("runAsUser", uid) == uid and own.get("privileged") is not True
                volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
                mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in container.get("volumeMounts", [])}
                assert all("emptyDir" in volume for volume in mounts.values()), (overlay, kind)
                # The bot writes exactly there; the migration, to the database only.
                assert set(mounts) == (writable if kind == "Deployment" else set()), (overlay, kind)


def test_the_project_ships_every_file_chainlit_would_write(rendered: Callable[[Path], Path]) -> None:
    """With a read-only root filesystem Chainlit could not create its config, translations or chainlit.md:
    every one must ship with the project (checked against the installed Chainlit's own list)."""
    for brand_file in EXAMPLES:
        project = rendered(brand_file)
        for name in (".chainlit/config.toml", "chainlit.md"):
            assert (project / name).is_file(), name
        builtin = {path.name for path in (CHAINLIT_DIR / "translations").glob("*.json")}
        shipped = {path.name for path in (project / ".chainlit/translations").glob("*.json")}
        assert builtin and builtin <= shipped, builtin - shipped
        assert "PYTHONDONTWRITEBYTECODE=1" in (project / "Dockerfile").read_text(encoding="utf-8")  # no .pyc


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_sessions_stick_to_a_pod_and_websockets_stay_open(pack: Callable[[Path], Pack], brand_file: Path) -> None:
    built = pack(brand_file)
    for overlay in ("base", "overlays/production"):
        build = built.builds[overlay]
        ingress = build.one("Ingress")
        annotations = {key.removeprefix("nginx.ingress.kubernetes.io/"): value
                       for key, value in ingress["metadata"]["annotations"].items()}
        assert annotations["affinity"] == "cookie"
        assert annotations["affinity-mode"] == "persistent"
        assert annotations["session-cookie-name"]
        assert int(annotations["session-cookie-max-age"]) >= 3600
        assert int(annotations["proxy-read-timeout"]) >= 3600 and int(annotations["proxy-send-timeout"]) >= 3600
        assert ingress["spec"]["ingressClassName"] == "nginx"
        rule = ingress["spec"]["rules"][0]
        assert [rule["host"]] == ingress["spec"]["tls"][0]["hosts"]
        backend = rule["http"]["paths"][0]["backend"]["service"]
        service = build.one("Service")
        assert backend["name"] == service["metadata"]["name"]
        port = next(item for item in service["spec"]["ports"] if item["name"] == backend["port"]["name"])
        assert port_number(build.container, port["targetPort"]) == 8000
    route = built.builds["overlays/gateway"].one("HTTPRoute")
    rule = route["spec"]["rules"][0]
    assert rule["sessionPersistence"]["type"] == "Cookie" and rule["sessionPersistence"]["sessionName"]
    assert rule["timeouts"]["request"] == "0s"  # no request timeout: a websocket lasts the conversation
    service = built.builds["overlays/gateway"].one("Service")
    [backend] = rule["backendRefs"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"] in {port["port"] for port in service["spec"]["ports"] if port["name"] == "http"}
    production_host = built.builds["overlays/production"].one("Ingress")["spec"]["rules"][0]["host"]
    assert route["spec"]["hostnames"] == [production_host]


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_no_secret_value_is_in_any_manifest(pack: Callable[[Path], Pack], brand_file: Path) -> None:
    built = pack(brand_file)
    name = secret_name(built)
    for overlay, build in built.builds.items():
        assert not build.all("Secret"), overlay
        for value in SENTINELS.values():
            assert value not in build.text, overlay
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", build.text), overlay  # no URL with a password
        assert not SECRET_VARIABLES & set(build.one("ConfigMap")["data"]), overlay
        for kind in ("Deployment", "Job"):
            for container in build.one(kind)["spec"]["template"]["spec"]["containers"]:
                for source in container.get("envFrom", []):
                    assert "secretRef" not in source or source["secretRef"]["name"] == name
                for variable in container.get("env", []):
                    if variable["name"] not in SECRET_VARIABLES:
                        continue
                    assert "value" not in variable, (overlay, kind, variable["name"])
                    reference = variable["valueFrom"]["secretKeyRef"]
                    assert reference["name"] == name and reference["key"] == variable["name"]
                    assert reference.get("optional", False) is (variable["name"] == "CUSTOMER_TOKEN_SECRET")
        deployment_secrets = {variable["name"] for variable in build.container["env"]
                              if "secretKeyRef" in variable.get("valueFrom", {})}
        assert deployment_secrets == SECRET_VARIABLES, overlay
    # The example file names exactly those keys, with no value; the real one stays out of git and the image.
    example = (built.folder / "secret.example.env").read_text(encoding="utf-8")
    pairs = [line.split("=", 1) for line in example.splitlines() if line.strip() and not line.startswith("#")]
    assert {key for key, _ in pairs} == SECRET_VARIABLES and all(value == "" for _, value in pairs)
    assert "secret.env" in (built.folder / ".gitignore").read_text(encoding="utf-8").split()
    assert "deploy/kubernetes/" in (built.project / ".dockerignore").read_text(encoding="utf-8").split()
    readme = (built.project / "README.md").read_text(encoding="utf-8")
    assert f"create secret generic {name} --from-env-file=deploy/kubernetes/secret.env" in readme
    assert "apply -k deploy/kubernetes/overlays/production" in readme


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_every_variable_the_pods_get_is_a_setting_the_bot_knows(pack: Callable[[Path], Pack], brand_file: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    built = pack(brand_file)
    settings = template_runtime_module("settings")
    known = {field.upper() for field in settings.Settings.model_fields} | CHAINLIT_VARIABLES
    for overlay, build in built.builds.items():
        config = build.one("ConfigMap")["data"]
        for kind in ("Deployment", "Job"):
            for container in build.one(kind)["spec"]["template"]["spec"]["containers"]:
                names = {variable["name"] for variable in container.get("env", [])}
                for source in container.get("envFrom", []):
                    assert source["configMapRef"]["name"] == build.one("ConfigMap")["metadata"]["name"]
                    names |= set(config)
                assert names <= known, (overlay, kind, sorted(names - known))
        # The ConfigMap's values are ones the bot accepts (with stand-ins for the secrets).
        for key, value in {**config, "BACKEND_API_SECRET": "stand-in-secret", "DATABASE_URL":
                           "postgresql+asyncpg://bot@db.example:5432/bot"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("BRAND_DATA_FILE", str(built.project / "brand.toml"))
        configured = settings.Settings()
        assert configured.metrics_port == 9090
        # Metrics on their own port: the container's `metrics` port, the Service's and the scrape annotations.
        assert port_number(build.container, "metrics") == configured.metrics_port
        annotations = build.pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == configured.metrics_port
        assert {"name": "metrics", "port": 9090, "targetPort": "metrics"} in build.one("Service")["spec"]["ports"]


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_replicas_disruption_budget_and_autoscaler_agree(pack: Callable[[Path], Pack], brand_file: Path) -> None:
    built = pack(brand_file)
    for overlay, build in built.builds.items():
        deployment, budget, scaler = (build.one(kind) for kind in
                                      ("Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"))
        replicas = deployment["spec"]["replicas"]
        assert replicas >= 2, overlay
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        # A drain must always be able to stop a pod: fewer must stay than there are.
        assert isinstance(budget["spec"]["minAvailable"], int) and 1 <= budget["spec"]["minAvailable"] < replicas
        assert scaler["spec"]["minReplicas"] == replicas >= budget["spec"]["minAvailable"] + 1, overlay
        assert scaler["spec"]["maxReplicas"] > scaler["spec"]["minReplicas"]
        assert scaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    "name": deployment["metadata"]["name"]}
        [metric] = scaler["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"] == {
            "type": "Utilization", "averageUtilization": 70}
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        job_labels = build.one("Job")["spec"]["template"]["metadata"]["labels"]
        for selector in (budget["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
                         build.one("Service")["spec"]["selector"]):
            assert labels_select(selector, pod_labels), overlay
            assert not labels_select(selector, job_labels), overlay  # the migration's pod gets no traffic
        assert "cpu" in build.container["resources"]["requests"]  # the autoscaler's utilization needs it
    base, production = built.builds["base"], built.builds["overlays/production"]
    assert production.one("Deployment")["spec"]["replicas"] > base.one("Deployment")["spec"]["replicas"]
    assert production.container["resources"] != base.container["resources"]


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_stopping_a_pod_lets_the_answers_in_flight_arrive(pack: Callable[[Path], Pack], brand_file: Path) -> None:
    """Chainlit closes every socket at SIGTERM: the preStop sleep is the window answers have to finish; after
    SIGTERM the bot lets those still under way finish (as long again at most: chat.finish_answers_in_flight),
    and the grace period covers both plus the bot's last database writes."""
    built = pack(brand_file)
    brand = built.brand
    in_flight = brand["request_timeout_seconds"] + brand["transition_delay_seconds"]
    for overlay, build in built.builds.items():
        command = build.container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep" and len(command) == 2, overlay
        sleep = int(command[1])
        assert sleep >= in_flight, overlay
        grace = build.pod["spec"]["terminationGracePeriodSeconds"]
        assert grace >= sleep + (in_flight + 1) + PERSISTENCE_FLUSH_SECONDS + 2, overlay


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_the_schema_migration_is_a_job_with_the_bots_image(pack: Callable[[Path], Pack], brand_file: Path) -> None:
    built = pack(brand_file)
    assert (built.project / "brandbot_runtime/schema/__main__.py").is_file()
    for overlay, build in built.builds.items():
        job = build.one("Job")
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", "brandbot_runtime.schema", "upgrade"]
        assert container["image"] == build.container["image"], overlay
        assert [variable["name"] for variable in container["env"]] == ["DATABASE_URL"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["ttlSecondsAfterFinished"] > 0
    image = built.builds["overlays/production"].container["image"]
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9-]+-bot:[\w.-]+", image), image
    base_host = built.builds["base"].one("Ingress")["spec"]["rules"][0]["host"]
    assert built.builds["overlays/production"].one("Ingress")["spec"]["rules"][0]["host"] != base_host


def test_the_longest_slug_still_gives_valid_names(tmp_path: Path, kubectl: str) -> None:
    """Names are cut to fit Kubernetes' limits (a Service's and a Job's name: 63 characters)."""
    slug = "a" * 50 + "-b" + "c" * 11  # 63 characters, the most a slug may have
    project = copier_render(tmp_path, {"brand_name": "Longest Slug", "brand_slug": slug})
    built = build_pack(kubectl, project)
    for overlay, build in built.builds.items():
        for item in build.objects:
            validate(item)
            name = item["metadata"]["name"]
            limit = 63 if item["kind"] in {"Service", "Job"} else 253
            assert len(name) <= limit and DNS_SUBDOMAIN.fullmatch(name), (overlay, name)
            for value in item["metadata"].get("labels", {}).values():
                assert len(value) <= 63, (overlay, value)
        assert build.container["image"].split("/")[-1].startswith(slug)
    assert built.builds["base"].one("Deployment")["metadata"]["name"] == "a" * 50 + "-bot"

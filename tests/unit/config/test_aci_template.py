"""deploy/keyvault/aci-template.json deploys a working worker on the first try (issue 13 item 5),
checked as far as can be done offline: ARM structure (the official schema is not available here, so
its required keys and parameter types are checked directly), parameters and variables declared and
used, every dependsOn target present, identity + vault access + role assignments + store before the
container group, documented built-in role ids, no secret in plain text."""

from __future__ import annotations

import json
import re
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import pytest

from dicomcast.config import keys
from tests.unit.config.arm import Evaluator, resource_path

TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "deploy" / "keyvault" / "aci-template.json"
TEMPLATE: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text())
GROUP = "Microsoft.ContainerInstance/containerGroups"
ROLE = "Microsoft.Authorization/roleAssignments"
# Built-in role ids as Microsoft Learn lists them ("Azure built-in roles",
# learn.microsoft.com/azure/role-based-access-control/built-in-roles; Integration and Containers).
DICOM_DATA_READER = "e89c7a3c-2f64-4fa1-a847-3e4c9ba4283a"  # "Read and search DICOM data"
DICOM_DATA_OWNER = "58a3b984-7adf-4c20-983a-32417c86fbc8"  # full access: more than dicomcast needs
FHIR_DATA_CONTRIBUTOR = "5a1fc7df-4bf1-4951-a576-89034ee01acd"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
PARAMETER_TYPES = {"string", "securestring", "int", "bool", "object", "secureObject", "array"}
SECRET_NAME = re.compile(r"password|secret|connectionstring|token|(account|shared|access|instrumentation)key", re.I)


def evaluator(template: dict[str, Any] = TEMPLATE) -> Evaluator:
    return Evaluator(template.get("variables", {}))


def all_resources(template: dict[str, Any] = TEMPLATE) -> list[dict[str, Any]]:
    return list(template["resources"])


def by_type(kind: str) -> list[dict[str, Any]]:
    return [r for r in all_resources() if r["type"] == kind]


def container_group() -> dict[str, Any]:
    (group,) = by_type(GROUP)
    return group


def container_env() -> dict[str, dict[str, Any]]:
    (container,) = container_group()["properties"]["containers"]
    return {e["name"]: e for e in container["properties"]["environmentVariables"]}


def dependency_graph() -> tuple[dict[str, set[str]], dict[str, dict[str, Any]]]:
    ev = evaluator()
    paths = {resource_path(r, ev): r for r in all_resources()}
    graph = {path: {str(ev.evaluate(d)) for d in r.get("dependsOn", [])} for path, r in paths.items()}
    return graph, paths


def requires(graph: dict[str, set[str]], start: str) -> set[str]:
    """Everything `start` waits for, directly or through others."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph.get(node, set())
    return seen


@pytest.mark.parametrize(
    "template", [TEMPLATE, TEMPLATE["resources"][5]["properties"]["template"]], ids=["main", "acrpull"]
)
def test_arm_structure(template: dict[str, Any]) -> None:
    assert {"$schema", "contentVersion", "resources"} <= set(template)
    assert set(template) <= {
        "$schema",
        "contentVersion",
        "metadata",
        "parameters",
        "variables",
        "resources",
        "outputs",
        "functions",
        "apiProfile",
    }
    assert template["$schema"].endswith("/deploymentTemplate.json#")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", template["contentVersion"])
    for name, parameter in template.get("parameters", {}).items():
        assert parameter["type"] in PARAMETER_TYPES, name
    for resource in template["resources"]:
        assert {"type", "apiVersion", "name"} <= set(resource), resource.get("name")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", resource["apiVersion"]), resource["type"]
    for name, output in template.get("outputs", {}).items():
        assert output["type"] in PARAMETER_TYPES, name


@pytest.mark.parametrize(
    "template", [TEMPLATE, TEMPLATE["resources"][5]["properties"]["template"]], ids=["main", "acrpull"]
)
def test_parameters_and_variables_are_declared_and_used(template: dict[str, Any]) -> None:
    ev = evaluator(template)
    body = {k: v for k, v in template.items() if k not in ("parameters", "variables")}
    for resource in body["resources"]:  # a nested template has its own scope ("inner")
        if resource["type"] == "Microsoft.Resources/deployments":
            ev.evaluate({k: v for k, v in resource["properties"].items() if k != "template"})
            ev.evaluate({k: v for k, v in resource.items() if k != "properties"})
        else:
            ev.evaluate(resource)
    ev.evaluate(body.get("outputs", {}))
    for parameter in template.get("parameters", {}).values():  # defaults may use other expressions
        ev.evaluate(parameter.get("defaultValue"))
    assert ev.used_parameters == set(template.get("parameters", {}))
    assert ev.used_variables == set(template.get("variables", {}))


def test_every_depends_on_target_is_in_the_template_and_the_order_is_acyclic() -> None:
    graph, _ = dependency_graph()
    for path, targets in graph.items():
        assert targets <= set(graph), f"{path} depends on something not declared: {targets - set(graph)}"
    order = list(TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order[-1] == resource_path(container_group(), evaluator())


# Resources the template names but does not deploy: they exist before it (the operator's).
EXTERNAL = ("Microsoft.HealthcareApis/workspaces/", "Microsoft.ContainerRegistry/registries/")


def test_every_resource_id_names_a_resource_of_the_template_or_an_existing_one() -> None:
    ev = evaluator()
    ev.evaluate(TEMPLATE["resources"])
    ev.evaluate(TEMPLATE["outputs"])
    declared = {resource_path(r, evaluator()) for r in all_resources()}
    for named in ev.resource_ids:
        assert named in declared or named.startswith(EXTERNAL), f"resourceId names nothing deployed: {named}"
    assert len(ev.resource_ids) >= 8  # identity, vault, policies, server, database, rules, logs, services


def test_identity_access_roles_and_store_exist_before_the_container_starts() -> None:
    graph, paths = dependency_graph()
    group_path = resource_path(container_group(), evaluator())
    before = requires(graph, group_path)
    needed = {
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "Microsoft.KeyVault/vaults",
        "Microsoft.KeyVault/vaults/accessPolicies",
        ROLE,
        "Microsoft.Resources/deployments",  # AcrPull on the registry, in the registry's group
        "Microsoft.DBforPostgreSQL/flexibleServers",
        "Microsoft.DBforPostgreSQL/flexibleServers/databases",
        "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules",
    }
    assert needed <= {paths[p]["type"] for p in before}
    assert all(path in before for path, r in paths.items() if r["type"] == ROLE)  # every role assignment
    for path, resource in paths.items():  # each grant waits for the identity it names
        if resource["type"] in (ROLE, "Microsoft.KeyVault/vaults/accessPolicies", "Microsoft.Resources/deployments"):
            assert any(paths[p]["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities" for p in graph[path]), (
                path
            )


def test_the_image_is_pulled_with_the_user_assigned_identity() -> None:
    ev = evaluator()
    group = container_group()
    identity = ev.evaluate(group["identity"])
    (identity_path,) = identity["userAssignedIdentities"]
    assert identity["type"] == "UserAssigned"
    (credential,) = ev.evaluate(group["properties"]["imageRegistryCredentials"])
    assert credential == {"server": "<registryName>.azurecr.io", "identity": identity_path}
    assert "password" not in json.dumps(group["properties"]["imageRegistryCredentials"])


def test_role_definitions_are_the_documented_least_privilege_built_ins() -> None:
    ev = evaluator()
    (deployment,) = by_type("Microsoft.Resources/deployments")
    inputs = {k: ev.evaluate(v["value"]) for k, v in deployment["properties"]["parameters"].items()}
    nested = Evaluator({}, inputs)
    grants: dict[str, str] = {}
    pairs = [(r, ev) for r in by_type(ROLE)] + [(r, nested) for r in deployment["properties"]["template"]["resources"]]
    for resource, scope_ev in pairs:
        role = str(scope_ev.evaluate(resource["properties"]["roleDefinitionId"])).rsplit("/", 1)[-1]
        scope = str(scope_ev.evaluate(resource["scope"]))
        grants[scope.split("/")[-2]] = role
        assert resource["properties"]["principalType"] == "ServicePrincipal"  # no wait for directory replication
    assert grants == {"dicomservices": DICOM_DATA_READER, "fhirservices": FHIR_DATA_CONTRIBUTOR, "registries": ACR_PULL}
    assert DICOM_DATA_OWNER not in TEMPLATE_PATH.read_text()
    assert DICOM_DATA_READER in TEMPLATE["metadata"]["roleDefinitions"]  # the source is named in the template


def test_vault_access_is_secrets_get_and_list_for_the_worker() -> None:
    ev = evaluator()
    (policies,) = by_type("Microsoft.KeyVault/vaults/accessPolicies")
    value = ev.evaluate(policies["properties"]["accessPolicies"])
    worker = value[0]
    assert worker["permissions"] == {"secrets": ["get", "list"]}
    assert "userAssignedIdentities" in worker["objectId"]
    (vault,) = by_type("Microsoft.KeyVault/vaults")
    assert vault["condition"] == "[parameters('createKeyVault')]"  # an existing (DICOM Cast) vault is kept
    assert ev.evaluate(policies["name"]).endswith("/add")  # appended, never replacing the vault's others


def test_no_secret_is_plain_text() -> None:
    for name, parameter in TEMPLATE["parameters"].items():
        if SECRET_NAME.search(name):
            assert parameter["type"] == "securestring", name
    for name, variable in container_env().items():
        secret = keys.is_secret_path(tuple(name.split("__"))) if "__" in name else False
        if secret or SECRET_NAME.search(name):
            assert "secureValue" in variable and "value" not in variable, name


def test_environment_names_are_known_settings() -> None:
    env = container_env()
    for name in env:
        if "__" in name:
            assert keys.match(name.split("__")).path is not None, name
        else:
            assert name == "AZURE_CLIENT_ID", name  # azure-identity's user-assigned identity for Key Vault
    assert {"KeyVault__Endpoint", "Store__ConnectionString"} <= set(env)
    (container,) = container_group()["properties"]["containers"]
    assert container["properties"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["properties"]["readinessProbe"]["exec"]["command"] == ["dicomcast", "check"]


def test_the_default_store_is_durable_postgresql() -> None:
    ev = evaluator()
    store = ev.evaluate(container_env()["Store__ConnectionString"]["secureValue"])
    assert (
        store["if"] == "empty(<storeConnectionString>)"
        and TEMPLATE["parameters"]["storeConnectionString"]["defaultValue"] == ""
    )
    assert store["then"].startswith("postgresql+psycopg://") and "sslmode=require" in store["then"]
    assert "sqlite" not in json.dumps(TEMPLATE).lower()
    (server,) = by_type("Microsoft.DBforPostgreSQL/flexibleServers")
    assert ev.evaluate(server["condition"]) == "empty(<storeConnectionString>)"


def test_log_analytics_is_optional() -> None:
    ev = evaluator()
    (workspace,) = by_type("Microsoft.OperationalInsights/workspaces")
    assert workspace["condition"] == "[parameters('logAnalytics')]"
    assert TEMPLATE["parameters"]["logAnalytics"]["defaultValue"] is False
    diagnostics = ev.evaluate(container_group()["properties"]["diagnostics"])
    assert diagnostics["if"] == "<logAnalytics>" and diagnostics["else"] == "null()"
    assert set(diagnostics["then"]["logAnalytics"]) >= {"workspaceId", "workspaceKey"}

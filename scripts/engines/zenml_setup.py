"""zenml_setup.py URL OUT.json: prepares a fresh ZenML server (started by zenml.sh) for
trigger-client's real tests, offline. Run from pipelines/chains/zenml (the chain's pipelines are
imported from there), with ZENML_SETUP_PASSWORD holding the admin's password.

1. Over REST: a password login, a service account `trigger-client-ci` and its API key.
2. As that account, through ZenML's own client: a snapshot `digital_data_etl-local` of the chain's
   digital_data_etl on the default (local) stack, which the server refuses to run; then, through
   the client's `zen_store` only (so nothing validates or contacts it), a kubernetes orchestrator
   and an s3 artifact store, a stack of the two, a pipeline build with a fake image, and a copy
   `digital_data_etl` of the local snapshot on that stack and build: `runnable` for the server.

Writes {"api_key", "snapshot", "local_snapshot"} to OUT.json (the key is a secret: 0600).
"""

import json
import os
import sys
import urllib.parse
import urllib.request

SNAPSHOT = "digital_data_etl"
LOCAL_SNAPSHOT = "digital_data_etl-local"


def rest(url, path, token=None, form=None, body=None):
    headers = {"Accept": "application/json"}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def service_account_key(url):
    login = rest(url, "/api/v1/login", form={
        "grant_type": "password",
        "username": "admin",
        "password": os.environ["ZENML_SETUP_PASSWORD"],
    })
    token = login["access_token"]
    account = rest(url, "/api/v1/service_accounts", token, body={"name": "trigger-client-ci", "active": True})
    key = rest(url, f"/api/v1/service_accounts/{account['id']}/api_keys", token, body={"name": "ci-key"})
    return key["body"]["key"]


def main():
    url, out = sys.argv[1], sys.argv[2]
    key = service_account_key(url)
    os.environ["ZENML_STORE_URL"] = url
    os.environ["ZENML_STORE_API_KEY"] = key

    import zenml
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.models import (
        BuildItem,
        ComponentRequest,
        PipelineBuildRequest,
        PipelineSnapshotRequest,
        StackRequest,
    )

    sys.path.insert(0, os.getcwd())
    from llm_twin import digital_data_etl

    # Baked-in values a run's step parameters replace (the test checks they did).
    local = digital_data_etl.with_options(
        enable_cache=False,
        parameters={"user_full_name": "Snapshot Default", "links": ["https://example.invalid/baked-in"]},
    ).create_snapshot(name=LOCAL_SNAPSHOT)
    store = Client().zen_store
    project = local.project_id
    orchestrator = store.create_stack_component(ComponentRequest(
        name="ci-remote-orchestrator",
        type=StackComponentType.ORCHESTRATOR,
        flavor="kubernetes",
        configuration={"local": False},
    ))
    artifact_store = store.create_stack_component(ComponentRequest(
        name="ci-remote-artifact-store",
        type=StackComponentType.ARTIFACT_STORE,
        flavor="s3",
        configuration={"path": "s3://trigger-client-ci-never-contacted/artifacts"},
    ))
    stack = store.create_stack(StackRequest(
        name="ci-remote",
        components={
            StackComponentType.ORCHESTRATOR: [orchestrator.id],
            StackComponentType.ARTIFACT_STORE: [artifact_store.id],
        },
    ))
    build = store.create_build(PipelineBuildRequest(
        project=project,
        stack=stack.id,
        pipeline=local.pipeline.id,
        is_local=False,
        contains_code=True,
        zenml_version=zenml.__version__,
        python_version=".".join(map(str, sys.version_info[:2])),
        images={"orchestrator": BuildItem(image="registry.invalid/llm-twin:ci", contains_code=True)},
    ))
    runnable = store.create_snapshot(PipelineSnapshotRequest(
        project=project,
        name=SNAPSHOT,
        stack=stack.id,
        pipeline=local.pipeline.id,
        build=build.id,
        run_name_template=local.run_name_template,
        pipeline_configuration=local.pipeline_configuration,
        step_configurations=local.step_configurations,
        client_environment=local.client_environment,
        client_version=local.client_version,
        server_version=local.server_version,
        pipeline_spec=local.pipeline_spec,
    ))
    runnable = store.get_snapshot(runnable.id)
    print(f"snapshot {SNAPSHOT} ({runnable.id}) runnable={runnable.runnable}; "
          f"{LOCAL_SNAPSHOT} ({local.id}) runnable={local.runnable}")
    if not runnable.runnable:
        sys.exit("the remote-stack snapshot is not runnable")
    with open(out, "w", encoding="utf-8") as handle:
        os.chmod(out, 0o600)
        json.dump({"api_key": key, "snapshot": SNAPSHOT, "local_snapshot": LOCAL_SNAPSHOT}, handle)


if __name__ == "__main__":
    main()

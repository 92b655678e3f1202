"""The sandbox Compute server, driven through the real google-cloud-compute client."""

import json
import time
import uuid

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from provisioning.compute import Compute, OperationFailed, clients, error_reason
from provisioning.sandbox.server import start_in_thread

from .conftest import PROJECT, ZONE

DONE = compute_v1.Operation.Status.DONE


def instance_body(name, machine_type="n1-standard-8"):
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{ZONE}/machineTypes/{machine_type}",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12"
                ),
            )
        ],
    )


def insert(api, name, request_id=None, **kwargs):
    return api.instances.insert_unary(
        request=compute_v1.InsertInstanceRequest(
            project=PROJECT,
            zone=ZONE,
            instance_resource=instance_body(name, **kwargs),
            request_id=request_id or str(uuid.uuid4()),
        )
    )


def wait(api, operation):
    while True:
        operation = api.zone_operations.wait(project=PROJECT, zone=ZONE, operation=operation.name)
        if operation.status == DONE:
            return operation


def status(api, name):
    return api.instances.get(project=PROJECT, zone=ZONE, instance=name).status


def test_insert_moves_through_provisioning_to_running(api):
    operation = insert(api, "acme-blue")
    assert operation.status == compute_v1.Operation.Status.PENDING
    assert operation.operation_type == "insert"
    assert operation.target_link.endswith(f"projects/{PROJECT}/zones/{ZONE}/instances/acme-blue")
    assert status(api, "acme-blue") == "PROVISIONING"

    seen = [operation.status.name]
    while seen[-1] != "DONE":
        current = api.zone_operations.get(project=PROJECT, zone=ZONE, operation=operation.name)
        seen.append(current.status.name)
        time.sleep(0.02)
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == [
        "PENDING",
        "RUNNING",
        "DONE",
    ]
    assert not current.error.errors
    assert status(api, "acme-blue") == "RUNNING"
    instance = api.instances.get(project=PROJECT, zone=ZONE, instance="acme-blue")
    assert instance.machine_type.endswith(f"zones/{ZONE}/machineTypes/n1-standard-8")
    assert instance.disks[0].boot and instance.disks[0].source.endswith("/disks/acme-blue")


def test_stop_then_start(api):
    wait(api, insert(api, "acme-blue"))
    stopping = api.instances.stop_unary(project=PROJECT, zone=ZONE, instance="acme-blue")
    assert wait(api, stopping).operation_type == "stop"
    assert status(api, "acme-blue") == "TERMINATED"
    wait(api, api.instances.start_unary(project=PROJECT, zone=ZONE, instance="acme-blue"))
    assert status(api, "acme-blue") == "RUNNING"


def test_delete_removes_the_instance_and_its_boot_disk(api):
    wait(api, insert(api, "acme-blue"))
    wait(api, api.instances.delete_unary(project=PROJECT, zone=ZONE, instance="acme-blue"))
    with pytest.raises(gexc.NotFound):
        api.instances.get(project=PROJECT, zone=ZONE, instance="acme-blue")
    with pytest.raises(gexc.NotFound):
        api.disks.get(project=PROJECT, zone=ZONE, disk="acme-blue")


def test_wait_may_answer_before_done_and_the_helper_loops():
    url, server = start_in_thread(speed=0.5, max_wait=0.1)  # operations take 0.6 s
    try:
        api = clients(url)
        operation = insert(api, "acme-blue")
        early = api.zone_operations.wait(project=PROJECT, zone=ZONE, operation=operation.name)
        assert early.status != DONE
        done = Compute(url).wait_zone_operation(PROJECT, ZONE, operation.name)
        assert done.status == DONE and status(api, "acme-blue") == "RUNNING"
    finally:
        server.stop()


def test_missing_instance_is_not_found_in_googles_error_format(api, sandbox):
    with pytest.raises(gexc.NotFound) as caught:
        api.instances.get(project=PROJECT, zone=ZONE, instance="nope")
    assert error_reason(caught.value) == "notFound"
    assert "projects/mi-acme/zones/us-central1-f/instances/nope' was not found" in str(caught.value)

    raw = requests.get(f"{sandbox[0]}/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/nope")
    assert raw.status_code == 404
    error = raw.json()["error"]
    assert error["code"] == 404
    assert error["errors"] == [
        {"message": error["message"], "domain": "global", "reason": "notFound"}
    ]


def test_duplicate_insert_is_a_conflict(api):
    wait(api, insert(api, "acme-blue"))
    with pytest.raises(gexc.Conflict) as caught:
        insert(api, "acme-blue")
    assert error_reason(caught.value) == "alreadyExists"


def test_same_request_id_returns_the_same_operation_and_creates_once(api, sandbox):
    request_id = str(uuid.uuid4())
    first = insert(api, "acme-blue", request_id=request_id)
    again = insert(api, "acme-blue", request_id=request_id)
    assert again.name == first.name
    wait(api, first)
    after_done = insert(api, "acme-blue", request_id=request_id)
    assert after_done.name == first.name and after_done.status == DONE
    assert list(sandbox[1].sandbox.snapshot_state()["instances"]) == [
        f"projects/{PROJECT}/zones/{ZONE}/instances/acme-blue"
    ]


def test_bad_bodies_are_400(api, sandbox):
    with pytest.raises(gexc.BadRequest) as caught:
        insert(api, "Not_A_Name")
    assert error_reason(caught.value) == "invalid"
    with pytest.raises(gexc.BadRequest) as caught:
        insert(api, "acme-blue", machine_type="n9-giant-1000")
    assert "Machine type with name 'n9-giant-1000' does not exist" in str(caught.value)

    url = f"{sandbox[0]}/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances"
    raw = requests.post(url, data="{not json", headers={"Content-Type": "application/json"})
    assert raw.status_code == 400
    assert raw.json()["error"]["errors"][0]["reason"] == "parseError"
    raw = requests.post(url, json={"machineType": f"zones/{ZONE}/machineTypes/n1-standard-8"})
    assert raw.status_code == 400
    assert raw.json()["error"]["errors"][0]["reason"] == "required"
    raw = requests.post(url + "?requestId=not-a-uuid", json={"name": "x"})
    assert raw.status_code == 400
    assert sandbox[1].sandbox.snapshot_state()["instances"] == {}


def test_disk_snapshot_list_and_delete(api, compute):
    wait(
        api,
        api.disks.insert_unary(
            project=PROJECT,
            zone=ZONE,
            disk_resource=compute_v1.Disk(name="acme-blue-data", size_gb=250),
        ),
    )
    assert api.disks.get(project=PROJECT, zone=ZONE, disk="acme-blue-data").status == "READY"

    operation = api.disks.create_snapshot_unary(
        project=PROJECT,
        zone=ZONE,
        disk="acme-blue-data",
        snapshot_resource=compute_v1.Snapshot(name="acme-blue-1"),
    )
    assert operation.operation_type == "createSnapshot"
    wait(api, operation)
    compute.create_snapshot(PROJECT, ZONE, "acme-blue-data", "acme-blue-2")
    compute.create_snapshot(PROJECT, ZONE, "acme-blue-data", "other-1")

    snapshot = api.snapshots.get(project=PROJECT, snapshot="acme-blue-1")
    assert snapshot.status == "READY"
    assert snapshot.disk_size_gb == 250
    assert snapshot.source_disk.endswith(f"zones/{ZONE}/disks/acme-blue-data")
    assert [s.name for s in compute.list_snapshots(PROJECT, "acme-blue-")] == [
        "acme-blue-1",
        "acme-blue-2",
    ]
    assert len(list(api.snapshots.list(project=PROJECT))) == 3

    deleting = api.snapshots.delete_unary(project=PROJECT, snapshot="acme-blue-1")
    done = api.global_operations.wait(project=PROJECT, operation=deleting.name)
    while done.status != DONE:
        done = api.global_operations.wait(project=PROJECT, operation=deleting.name)
    with pytest.raises(gexc.NotFound):
        api.snapshots.get(project=PROJECT, snapshot="acme-blue-1")
    compute.delete_snapshot(PROJECT, "acme-blue-2")
    assert compute.delete_snapshot(PROJECT, "acme-blue-2") is None  # already gone is fine
    assert [s.name for s in compute.list_snapshots(PROJECT, "acme-")] == []


def test_vm_restored_from_a_snapshot_and_disk_in_use(compute):
    compute.create_disk(PROJECT, ZONE, "acme-blue-data", 300)
    compute.create_snapshot(PROJECT, ZONE, "acme-blue-data", "acme-suspend")
    compute.insert_vm(PROJECT, ZONE, "acme-green", "n1-standard-16", snapshot="acme-suspend")
    assert compute.get_instance_status(PROJECT, ZONE, "acme-green") == "RUNNING"
    restored = compute.get_disk(PROJECT, ZONE, "acme-green-data")
    assert restored.source_snapshot.endswith("/global/snapshots/acme-suspend")
    assert restored.size_gb == 300

    with pytest.raises(gexc.BadRequest) as caught:
        compute.delete_disk(PROJECT, ZONE, "acme-green-data")
    assert error_reason(caught.value) == "resourceInUseByAnotherResource"
    compute.delete_vm(PROJECT, ZONE, "acme-green")
    compute.delete_disk(PROJECT, ZONE, "acme-green-data")
    assert compute.get_disk(PROJECT, ZONE, "acme-green-data") is None
    assert compute.get_instance_status(PROJECT, ZONE, "acme-green") is None


def test_injected_resource_in_use_arrives_as_bad_request(sandbox):
    url, _ = sandbox
    fault = {
        "method": "DELETE",
        "path_regex": "/networkEndpointGroups/default-neg$",
        "status": 400,
        "reason": "resourceInUseByAnotherResource",
        "message": (
            "The network_endpoint_group resource 'projects/mi-acme/zones/us-central1-f/"
            "networkEndpointGroups/default-neg' is already being used by "
            "'projects/mi-acme/global/backendServices/default-backend-service'"
        ),
        "times": 1,
    }
    assert requests.post(f"{url}/_sandbox/faults", json=fault).status_code == 200
    negs = compute_v1.NetworkEndpointGroupsClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": url},
    )
    with pytest.raises(gexc.BadRequest) as caught:
        negs.delete_unary(project=PROJECT, zone=ZONE, network_endpoint_group="default-neg")
    assert error_reason(caught.value) == "resourceInUseByAnotherResource"
    assert caught.value.errors[0]["domain"] == "global"
    assert "already being used by" in caught.value.message
    assert requests.get(f"{url}/_sandbox/faults").json() == {"faults": []}  # used up


def test_injected_429_and_503_are_retried_with_the_same_request_id(api, compute, sandbox):
    server = sandbox[1]
    server.sandbox.add_fault(
        method="GET",
        path_regex="/instances/acme-blue$",
        status=429,
        reason="rateLimitExceeded",
        domain="usageLimits",
    )
    with pytest.raises(gexc.TooManyRequests):
        api.instances.get(project=PROJECT, zone=ZONE, instance="acme-blue")

    server.sandbox.add_fault(
        method="POST", path_regex="/instances$", status=503, reason="backendError", times=2
    )
    compute.insert_vm(PROJECT, ZONE, "acme-blue", "n1-standard-8")
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") == "RUNNING"
    assert len(server.sandbox.snapshot_state()["instances"]) == 1


def test_failure_inside_an_operation_raises_operation_failed(compute, sandbox):
    compute.insert_vm(PROJECT, ZONE, "acme-blue", "n1-standard-8")
    sandbox[1].sandbox.add_fault(
        method="POST",
        path_regex="/instances/acme-blue/stop$",
        status=503,
        reason="ZONE_RESOURCE_POOL_EXHAUSTED",
        message="The zone does not have enough resources available to fulfill the request.",
        as_operation=True,
    )
    with pytest.raises(OperationFailed) as caught:
        compute.stop_vm(PROJECT, ZONE, "acme-blue")
    assert caught.value.codes == ["SERVICE_UNAVAILABLE"]
    assert "enough resources" in str(caught.value)
    assert compute.get_instance_status(PROJECT, ZONE, "acme-blue") == "RUNNING"


def test_unserved_paths_are_not_mistaken_for_missing_resources(sandbox):
    raw = requests.get(f"{sandbox[0]}/compute/v1/projects/{PROJECT}/global/images")
    assert raw.status_code == 501


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "sandbox.json"
    url, server = start_in_thread(state_path=state)
    first = clients(url)
    wait(first, insert(first, "acme-blue"))
    pending = insert(first, "acme-green")  # still PENDING when the server stops
    server.stop()
    with pytest.raises(requests.ConnectionError):  # kept-alive connections are closed too
        first.instances.get(project=PROJECT, zone=ZONE, instance="acme-blue")
    assert "acme-blue" in json.dumps(json.loads(state.read_text())["instances"])

    url, server = start_in_thread(state_path=state)
    try:
        second = clients(url)
        assert status(second, "acme-blue") == "RUNNING"
        assert wait(second, pending).status == DONE
        assert status(second, "acme-green") == "RUNNING"
    finally:
        server.stop()

"""Static catalogue: machine slugs with hourly prices, and the one simulated cloud account."""

from __future__ import annotations

from typing import Any

DEFAULT_CLUSTER_ID = "lightning-public-prod"

# slug -> (family, cpus, gpus, gpu type, on-demand USD/hour)
MACHINES: dict[str, tuple[str, int, int, str, float]] = {
    "cpu-2": ("CPU", 2, 0, "", 0.08),
    "cpu-4": ("CPU", 4, 0, "", 0.16),
    "cpu-8": ("CPU", 8, 0, "", 0.32),
    "cpu-16": ("CPU", 16, 0, "", 0.64),
    "data-prep-mid": ("DATA-PREP", 32, 0, "", 1.60),
    "data-prep-max-large": ("DATA-PREP", 64, 0, "", 3.20),
    "data-prep-ultra-extra-large": ("DATA-PREP", 96, 0, "", 4.80),
    "lit-t4-1-small": ("T4", 4, 1, "T4", 0.42),
    "lit-t4-1": ("T4", 8, 1, "T4", 0.68),
    "lit-t4-2": ("T4", 16, 2, "T4", 1.36),
    "lit-t4-4": ("T4", 32, 4, "T4", 2.72),
    "lit-t4-8": ("T4", 64, 8, "T4", 5.44),
    "lit-l4-1": ("L4", 8, 1, "L4", 0.85),
    "lit-l4-2": ("L4", 24, 2, "L4", 1.70),
    "lit-l4-4": ("L4", 48, 4, "L4", 3.40),
    "lit-l4-8": ("L4", 96, 8, "L4", 6.80),
    "lit-l40s-1": ("L40S", 8, 1, "L40S", 1.79),
    "lit-l40s-2": ("L40S", 24, 2, "L40S", 3.58),
    "lit-l40s-4": ("L40S", 48, 4, "L40S", 7.16),
    "lit-l40s-8": ("L40S", 192, 8, "L40S", 14.32),
    "lit-rtx-6000-pro-1": ("RTXP_6000", 16, 1, "RTX PRO 6000", 2.10),
    "lit-rtx-6000-pro-2": ("RTXP_6000", 32, 2, "RTX PRO 6000", 4.20),
    "lit-rtx-6000-pro-4": ("RTXP_6000", 64, 4, "RTX PRO 6000", 8.40),
    "lit-rtx-6000-pro-8": ("RTXP_6000", 128, 8, "RTX PRO 6000", 16.80),
    "lit-a100-1": ("A100", 12, 1, "A100", 2.15),
    "lit-a100-2": ("A100", 24, 2, "A100", 4.30),
    "lit-a100-4": ("A100", 48, 4, "A100", 8.60),
    "lit-a100-8": ("A100", 96, 8, "A100", 17.20),
    "lit-a100-40gb-1": ("A100", 12, 1, "A100 40GB", 1.90),
    "lit-a100-40gb-2": ("A100", 24, 2, "A100 40GB", 3.80),
    "lit-a100-40gb-4": ("A100", 48, 4, "A100 40GB", 7.60),
    "lit-a100-40gb-8": ("A100", 96, 8, "A100 40GB", 15.20),
    "lit-a100-80gb-1": ("A100", 12, 1, "A100 80GB", 2.40),
    "lit-a100-80gb-2": ("A100", 24, 2, "A100 80GB", 4.80),
    "lit-a100-80gb-4": ("A100", 48, 4, "A100 80GB", 9.60),
    "lit-a100-80gb-8": ("A100", 96, 8, "A100 80GB", 19.20),
    "lit-h100-1": ("H100", 26, 1, "H100", 3.50),
    "lit-h100-2": ("H100", 52, 2, "H100", 7.00),
    "lit-h100-4": ("H100", 104, 4, "H100", 14.00),
    "lit-h100-8": ("H100", 208, 8, "H100", 28.00),
    "lit-h200-1": ("H200", 26, 1, "H200", 4.50),
    "lit-h200-2": ("H200", 52, 2, "H200", 9.00),
    "lit-h200-4": ("H200", 104, 4, "H200", 18.00),
    "lit-h200-8": ("H200", 208, 8, "H200", 36.00),
    "lit-b200-1": ("B200", 30, 1, "B200", 6.00),
    "lit-b200-8": ("B200", 240, 8, "B200", 48.00),
}

DEFAULT_HOURLY_PRICE = 0.50  # unknown instance names (raw cloud instance types)
SPOT_DISCOUNT = 0.4  # spot machines cost 40 % of on-demand


def price_per_second(instance_name: str, spot: bool) -> float:
    """USD per second of running time for ``spec.instanceName`` (spot is cheaper)."""
    machine = MACHINES.get(instance_name)
    hourly = machine[4] if machine else DEFAULT_HOURLY_PRICE
    if spot:
        hourly *= SPOT_DISCOUNT
    return hourly / 3600.0


def accelerator(slug: str, cluster_id: str = DEFAULT_CLUSTER_ID) -> dict[str, Any]:
    """A ``V1ClusterAccelerator`` for one machine slug."""
    family, cpus, gpus, gpu_type, hourly = MACHINES[slug]
    return {
        "acceleratorType": "GPU" if gpus else "CPU",
        "clusterId": cluster_id,
        "cost": hourly,
        "spotPrice": round(hourly * SPOT_DISCOUNT, 4),
        "displayName": slug,
        "dwsOnly": False,
        "dwsSupported": False,
        "enabled": True,
        "family": family,
        "instanceId": slug,
        "secondaryInstanceId": "",
        "nonOndemand": False,
        "nonSpot": False,
        "outOfCapacity": False,
        "provider": "AWS",
        "resources": {
            "cpu": cpus,
            "gpu": gpus,
            "gpuType": gpu_type,
            "cpus": str(cpus),
            "memoryMb": str(cpus * 4096),
            "storageGb": "100",
            "iops": "0",
            "throughput": "0",
            "extra": {},
        },
        "slug": slug,
        "slugMultiCloud": slug,
    }


def accelerators(cluster_id: str = DEFAULT_CLUSTER_ID) -> list[dict[str, Any]]:
    """Every machine of the catalogue as ``V1ClusterAccelerator`` entries."""
    return [accelerator(slug, cluster_id) for slug in MACHINES]


def cluster(created_at: str, cluster_id: str = DEFAULT_CLUSTER_ID) -> dict[str, Any]:
    """The simulated global AWS cloud account as a ``V1ExternalCluster``."""
    return {
        "id": cluster_id,
        "name": cluster_id,
        "createdAt": created_at,
        "protected": False,
        "spec": {
            "clusterType": "CLUSTER_TYPE_GLOBAL",
            "driver": "AWS",
            "domain": "lightning.ai",
            "awsV1": {"region": "us-east-1"},
            "googleCloudV1": None,
            "lambdaLabsV1": None,
            "machineV1": None,
            "nebiusV1": None,
        },
        "status": {"phase": "CLUSTER_STATE_RUNNING"},
    }


def cluster_binding(project_id: str, created_at: str, cluster_id: str = DEFAULT_CLUSTER_ID) -> dict[str, Any]:
    """A ``V1ProjectClusterBinding`` tying the teamspace to the simulated cloud account."""
    return {
        "clusterId": cluster_id,
        "clusterName": cluster_id,
        "clusterRegion": "us-east-1",
        "createdAt": created_at,
        "updatedAt": created_at,
        "isClusterHealthy": True,
        "projectId": project_id,
        "saKey": "",
        "saKeyCreatedAt": None,
    }

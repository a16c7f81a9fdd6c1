"""Where Google offers each service the deploy uses, and where each resource therefore goes.

    python3 infra/locations.py place --region R [--scheduler-region S] [--firestore-location F]
                                     [--sweeper] [--firestore] [--memorystore]
        prints `scheduler_region=S` (the job's location: R when Cloud Scheduler is offered there, else
        the nearest region that has it), or names each service a location lacks and exits 2.
    python3 infra/locations.py terraform
        writes infra/terraform/locations.tf.json (the same table as Terraform locals).

The table below is Google's location pages as read on READ_ON (URLs in SOURCES). Standard library
only: deploy.sh runs it before anything is installed or created. tests/test_locations.py holds both
deploy paths to it and checks that the Terraform copy is current.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

READ_ON = "2026-12-06"

# Where each region is (its data centre's town, from the same pages' descriptions), to find the nearest.
REGIONS: dict[str, tuple[str, float, float]] = {
    "africa-south1": ("Johannesburg", -26.20, 28.05),
    "asia-east1": ("Changhua County, Taiwan", 24.08, 120.54),
    "asia-east2": ("Hong Kong", 22.32, 114.17),
    "asia-northeast1": ("Tokyo", 35.68, 139.69),
    "asia-northeast2": ("Osaka", 34.69, 135.50),
    "asia-northeast3": ("Seoul", 37.57, 126.98),
    "asia-south1": ("Mumbai", 19.08, 72.88),
    "asia-south2": ("Delhi", 28.61, 77.21),
    "asia-southeast1": ("Jurong West, Singapore", 1.34, 103.71),
    "asia-southeast2": ("Jakarta", -6.21, 106.85),
    "asia-southeast3": ("Bangkok", 13.76, 100.50),
    "australia-southeast1": ("Sydney", -33.87, 151.21),
    "australia-southeast2": ("Melbourne", -37.81, 144.96),
    "europe-central2": ("Warsaw", 52.23, 21.01),
    "europe-north1": ("Hamina, Finland", 60.57, 27.20),
    "europe-north2": ("Stockholm", 59.33, 18.07),
    "europe-southwest1": ("Madrid", 40.42, -3.70),
    "europe-west1": ("St. Ghislain, Belgium", 50.47, 3.82),
    "europe-west2": ("London", 51.51, -0.13),
    "europe-west3": ("Frankfurt", 50.11, 8.68),
    "europe-west4": ("Eemshaven, Netherlands", 53.44, 6.83),
    "europe-west6": ("Zurich", 47.38, 8.54),
    "europe-west8": ("Milan", 45.46, 9.19),
    "europe-west9": ("Paris", 48.86, 2.35),
    "europe-west10": ("Berlin", 52.52, 13.40),
    "europe-west12": ("Turin", 45.07, 7.69),
    "me-central1": ("Doha", 25.29, 51.53),
    "me-central2": ("Dammam", 26.43, 50.10),
    "me-west1": ("Tel Aviv", 32.09, 34.78),
    "northamerica-northeast1": ("Montréal", 45.50, -73.57),
    "northamerica-northeast2": ("Toronto", 43.65, -79.38),
    "northamerica-south1": ("Querétaro, Mexico", 20.59, -100.39),
    "southamerica-east1": ("Osasco, São Paulo", -23.53, -46.79),
    "southamerica-west1": ("Santiago", -33.45, -70.67),
    "us-central1": ("Council Bluffs, Iowa", 41.26, -95.86),
    "us-east1": ("Moncks Corner, South Carolina", 33.20, -80.01),
    "us-east4": ("Ashburn, Virginia", 39.04, -77.49),
    "us-east5": ("Columbus, Ohio", 39.96, -83.00),
    "us-south1": ("Dallas", 32.78, -96.80),
    "us-west1": ("The Dalles, Oregon", 45.59, -121.18),
    "us-west2": ("Los Angeles", 34.05, -118.24),
    "us-west3": ("Salt Lake City", 40.76, -111.89),
    "us-west4": ("Las Vegas", 36.17, -115.14),
}

# The services, by the name deploy.sh and Terraform use, with the name Google gives them.
NAMES = {
    "functions": "Cloud Run functions",
    "firestore": "Firestore",
    "scheduler": "Cloud Scheduler",
    "memorystore": "Memorystore for Redis",
    "secretmanager": "Secret Manager",
    "monitoring": "Cloud Monitoring",
}

SOURCES = {
    # Functions (2nd gen) are Cloud Run services: Cloud Run's list, tier 1 and tier 2.
    "functions": "https://cloud.google.com/run/docs/locations",
    # Regional locations, and the multi-regions nam5 and eur3.
    "firestore": "https://docs.cloud.google.com/firestore/native/docs/locations",
    # The Americas table (no southamerica-west1: southamerica-east1 is followed by us-central1), and
    # the additions of the release notes of 2026-04-17, 2026-09-18 and 2026-09-24
    # (https://docs.cloud.google.com/scheduler/docs/release-notes).
    "scheduler": "https://docs.cloud.google.com/scheduler/docs/locations",
    "memorystore": "https://cloud.google.com/memorystore/docs/redis/regions",
    # Secrets with automatic replication are global resources; deploy.sh and Terraform create only those.
    "secretmanager": "https://cloud.google.com/secret-manager/docs/locations",
    # Metrics, alert policies, notification channels and dashboards belong to the project (global).
    "monitoring": "https://cloud.google.com/monitoring/api/v3",
}

_CLOUD_RUN = {
    # Tier 1
    "asia-east1", "asia-northeast1", "asia-northeast2", "europe-north1", "europe-southwest1", "europe-west1",
    "europe-west4", "europe-west8", "europe-west9", "me-west1", "us-central1", "us-east1", "us-east4", "us-east5",
    "us-south1", "us-west1",
    # Tier 2
    "africa-south1", "asia-east2", "asia-northeast3", "asia-southeast1", "asia-southeast2", "asia-south1",
    "asia-south2", "australia-southeast1", "australia-southeast2", "europe-central2", "europe-west10",
    "europe-west12", "europe-west2", "europe-west3", "europe-west6", "me-central1", "me-central2",
    "northamerica-northeast1", "northamerica-northeast2", "southamerica-east1", "southamerica-west1", "us-west2",
    "us-west3", "us-west4",
}  # fmt: skip

_FIRESTORE = {
    "nam5", "eur3",
    "africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3",
    "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "australia-southeast1",
    "australia-southeast2", "europe-central2", "europe-north1", "europe-north2", "europe-southwest1",
    "europe-west1", "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9",
    "europe-west10", "europe-west12", "me-central1", "me-central2", "me-west1", "northamerica-northeast1",
    "northamerica-northeast2", "northamerica-south1", "southamerica-east1", "southamerica-west1", "us-central1",
    "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4",
}  # fmt: skip

_SCHEDULER = {
    "northamerica-northeast1", "northamerica-northeast2", "southamerica-east1", "us-central1", "us-east1",
    "us-east4", "us-west1", "us-west2", "us-west3", "us-west4",
    "europe-central2", "europe-west1", "europe-west2", "europe-west3", "europe-west4", "europe-west6",
    "europe-west12",
    "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3", "asia-south1",
    "asia-south2", "asia-southeast1", "asia-southeast2", "asia-southeast3", "australia-southeast1",
    "me-central1", "me-central2", "me-west1",
}  # fmt: skip

_MEMORYSTORE = {
    "africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3",
    "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "australia-southeast1",
    "australia-southeast2", "europe-central2", "europe-north1", "europe-southwest1", "europe-west1",
    "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9",
    "europe-west10", "europe-west12", "me-central1", "me-central2", "me-west1", "northamerica-northeast1",
    "northamerica-northeast2", "southamerica-east1", "southamerica-west1", "us-central1", "us-east1", "us-east4",
    "us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4",
}  # fmt: skip

OFFERED: dict[str, frozenset[str]] = {
    "functions": frozenset(_CLOUD_RUN),
    "firestore": frozenset(_FIRESTORE),
    "scheduler": frozenset(_SCHEDULER),
    "memorystore": frozenset(_MEMORYSTORE),
    "secretmanager": frozenset({"global"}),
    "monitoring": frozenset({"global"}),
}

TERRAFORM_COPY = Path(__file__).resolve().parent / "terraform" / "locations.tf.json"


def distance_km(a: str, b: str) -> float:
    """Great-circle distance between two regions' towns."""
    _, lat1, lon1 = REGIONS[a]
    _, lat2, lon2 = REGIONS[b]
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def nearest(service: str, region: str) -> str:
    """REGION when SERVICE is offered there, else the nearest region that offers it."""
    if region in OFFERED[service]:
        return region
    candidates = sorted(OFFERED[service] & REGIONS.keys())
    return min(candidates, key=lambda other: (distance_km(region, other), other))


def place(
    region: str,
    scheduler_region: str | None = None,
    firestore_location: str | None = None,
    sweeper: bool = True,
    memorystore: bool = False,
) -> tuple[dict[str, str], list[str]]:
    """Each resource's location, and what is refused (one sentence per missing service)."""
    refused: list[str] = []
    where: dict[str, str] = {"functions": region, "secretmanager": "global", "monitoring": "global"}

    def need(service: str, location: str, why: str) -> None:
        if location not in OFFERED[service]:
            refused.append(
                f"{NAMES[service]} is not offered in {location} ({why}; Google's list read {READ_ON}: "
                f"{SOURCES[service]})"
            )

    need("functions", region, "--region, both functions")
    if memorystore:
        need("memorystore", region, "Memorystore goes in the functions' region")
        where["memorystore"] = region
    if firestore_location is not None:
        need("firestore", firestore_location, "--firestore-location, the database")
        where["firestore"] = firestore_location
    if sweeper:
        if scheduler_region:
            need("scheduler", scheduler_region, "--scheduler-region, the sweep job")
            where["scheduler"] = scheduler_region
        elif region in REGIONS:
            where["scheduler"] = nearest("scheduler", region)
        else:
            refused.append(f"no nearest Cloud Scheduler region is known for {region}: give --scheduler-region")
    return where, refused


def terraform_table() -> dict[str, object]:
    """The table as Terraform locals: the lists, and each function region's scheduler region."""
    return {
        "//": f"Generated by infra/locations.py from Google's location pages read {READ_ON}; do not edit.",
        "locals": {
            "locations": {service: sorted(OFFERED[service]) for service in NAMES},
            "locations_read_on": READ_ON,
            "scheduler_nearest": {
                region: nearest("scheduler", region) for region in sorted(OFFERED["functions"]) if region in REGIONS
            },
        },
    }


def terraform_text() -> str:
    return json.dumps(terraform_table(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="infra/locations.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("place")
    run.add_argument("--region", required=True)
    run.add_argument("--scheduler-region", default="")
    run.add_argument("--firestore-location")
    run.add_argument("--sweeper", action="store_true")
    run.add_argument("--memorystore", action="store_true")
    commands.add_parser("terraform")
    args = parser.parse_args(argv)
    if args.command == "terraform":
        TERRAFORM_COPY.write_text(terraform_text(), encoding="utf-8")
        return 0
    where, refused = place(
        args.region,
        scheduler_region=args.scheduler_region or None,
        firestore_location=args.firestore_location,
        sweeper=args.sweeper,
        memorystore=args.memorystore,
    )
    if refused:
        for line in refused:
            print(f"deploy.sh: {line}", file=sys.stderr)
        print("deploy.sh: nothing was created; choose locations where each service is offered", file=sys.stderr)
        return 2
    for service, location in where.items():
        print(f"{service}={location}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

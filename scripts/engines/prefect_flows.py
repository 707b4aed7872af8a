"""Flows served to the real-Prefect integration test of trigger-client.

`digital_data_etl` has the LLM Twin pipeline's signature and records the parameters it
received in $TRIGGER_PREFECT_OUTPUT_DIR/<flow run id>.json, so the test can check what arrived.
`fail-flow` always raises; `slow-flow` ticks for `seconds` (for cancel tests).
"""

import json
import os
import time

from prefect import flow, serve
from prefect.runtime import flow_run

OUTPUT_DIR = os.environ["TRIGGER_PREFECT_OUTPUT_DIR"]


@flow(name="digital_data_etl", log_prints=True)
def digital_data_etl(user_full_name: str, links: list[str]) -> str:
    record = {"flow_run_id": str(flow_run.id), "user_full_name": user_full_name, "links": links}
    path = os.path.join(OUTPUT_DIR, f"{flow_run.id}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        json.dump(record, out)
    os.replace(path + ".tmp", path)
    print(f"received {len(links)} links for {user_full_name}")
    return user_full_name


@flow(name="fail-flow")
def fail(reason: str = "boom") -> None:
    raise RuntimeError(reason)


@flow(name="slow-flow", log_prints=True)
def slow(seconds: int = 60) -> None:
    for tick in range(seconds):
        print(f"tick {tick}")
        time.sleep(1)


if __name__ == "__main__":
    serve(
        digital_data_etl.to_deployment(name="ci"),
        fail.to_deployment(name="ci"),
        slow.to_deployment(name="ci"),
        limit=4,
    )

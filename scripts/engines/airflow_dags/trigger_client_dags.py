"""DAGs served to the real-Airflow integration test of trigger-client.

`digital_data_etl` takes the LLM Twin pipeline's parameters from the run's `conf` and records
what it received in $TRIGGER_AIRFLOW_OUTPUT_DIR/<dag_run_id>.json; `fail_dag` always fails.
"""

import json
import os

import pendulum
from airflow.sdk import dag, get_current_context, task

START = pendulum.datetime(2024, 1, 1, tz="UTC")


@dag(
    dag_id="digital_data_etl",
    schedule=None,
    start_date=START,
    catchup=False,
    is_paused_upon_creation=False,
    params={"user_full_name": "", "links": []},
    tags=["trigger-client"],
)
def digital_data_etl():
    @task
    def crawl() -> dict:
        context = get_current_context()
        params = context["params"]
        run_id = context["dag_run"].run_id
        record = {
            "dag_run_id": run_id,
            "user_full_name": params["user_full_name"],
            "links": list(params["links"]),
        }
        out_dir = os.environ["TRIGGER_AIRFLOW_OUTPUT_DIR"]
        path = os.path.join(out_dir, f"{run_id}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            json.dump(record, out)
        os.replace(path + ".tmp", path)
        return record

    crawl()


@dag(
    dag_id="fail_dag",
    schedule=None,
    start_date=START,
    catchup=False,
    is_paused_upon_creation=False,
    tags=["trigger-client"],
)
def fail_dag():
    @task
    def crawl() -> None:
        raise RuntimeError("intentional failure from the trigger-client test")

    crawl()


digital_data_etl()
fail_dag()

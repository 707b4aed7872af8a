"""Runs one of the chain's ZenML pipelines on the active stack, as the LLM Twin's tools/run.py does
(`<pipeline>.with_options(config_path=..., run_name=..., enable_cache=False)()`).

    run.py digital_data_etl --config FILE     the run's config, as the watcher writes it
    run.py feature_engineering --config FILE  the authors named in that config
    run.py generate_instruct_datasets
    run.py generate_preference_datasets

`digital_data_etl` reads FILE with ZenML itself (`config_path`), so a config ZenML would refuse
(an unknown key under `parameters`) fails here as it would in the LLM Twin. A config in the
`end_to_end_data` shape ({"parameters": {"author_links": [...]}}) runs digital_data_etl once per
author. Exit code 2 means bad input; a failed pipeline run raises (exit 1).
"""

import argparse
import datetime
import json
import os
import sys
import tempfile

import yaml


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_config(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    if not isinstance(config, dict) or not isinstance(config.get("parameters"), dict):
        fail(f"{path} has no `parameters` mapping")
    return config


def authors(config: dict) -> list[dict]:
    params = config["parameters"]
    if "author_links" in params:
        entries = params["author_links"]
        if not isinstance(entries, list):
            fail("`author_links` is not a list")
        return entries
    return [params]


def run_name(pipeline: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y_%m_%d_%H_%M_%S_%f")
    run_id = os.environ.get("PIPELINES_RUN_ID", "")
    return f"{pipeline}_run_{stamp}" + (f"_{run_id}" if run_id else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "pipeline",
        choices=[
            "digital_data_etl",
            "feature_engineering",
            "generate_instruct_datasets",
            "generate_preference_datasets",
        ],
    )
    parser.add_argument("--config", help="the run's config file (YAML or JSON)")
    args = parser.parse_args()
    if args.pipeline in ("digital_data_etl", "feature_engineering") and not args.config:
        fail(f"{args.pipeline} needs --config")

    import llm_twin  # after argument parsing: importing ZenML takes seconds

    if args.pipeline == "digital_data_etl":
        config = read_config(args.config)
        if "author_links" not in config["parameters"]:
            llm_twin.digital_data_etl.with_options(
                config_path=args.config, run_name=run_name("digital_data_etl"), enable_cache=False
            )()
            return
        for entry in authors(config):
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as one:
                json.dump({"parameters": {"user_full_name": entry.get("user_full_name"), "links": entry.get("links")}}, one)
            try:
                llm_twin.digital_data_etl.with_options(
                    config_path=one.name, run_name=run_name("digital_data_etl"), enable_cache=False
                )()
            finally:
                os.unlink(one.name)
    elif args.pipeline == "feature_engineering":
        names = [entry.get("user_full_name") for entry in authors(read_config(args.config))]
        if not all(isinstance(name, str) and name.strip() for name in names):
            fail("an author has no `user_full_name`")
        llm_twin.feature_engineering.with_options(
            run_name=run_name("feature_engineering"), enable_cache=False
        )(author_full_names=names)
    else:
        dataset_type = (
            llm_twin.DatasetType.INSTRUCTION
            if args.pipeline == "generate_instruct_datasets"
            else llm_twin.DatasetType.PREFERENCE
        )
        llm_twin.generate_datasets.with_options(
            run_name=run_name(args.pipeline), enable_cache=False
        )(dataset_type=dataset_type, test_split_size=0.1, push_to_huggingface=False, mock=False)


if __name__ == "__main__":
    main()

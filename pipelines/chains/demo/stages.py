#!/usr/bin/env python3
"""The demo chain's stages: the LLM Twin's pipeline order, offline, standard library only.

    stages.py digital_data_etl --config FILE --out DIR
    stages.py feature_engineering --out DIR
    stages.py generate_instruct_datasets --out DIR
    stages.py generate_preference_datasets --out DIR
    stages.py summary --out DIR [--run-id ID]

digital_data_etl reads the run's config (JSON, which the runner writes as config.yaml; YAML
configs are read too when PyYAML is installed) in the `digital_data_etl` shape
{"parameters": {"user_full_name", "links"}} or the `end_to_end_data` shape
{"parameters": {"author_links": [{"user_full_name", "links"}]}}. Nothing is fetched: the
"documents" are derived from the URLs, so the chain runs anywhere. Each stage reads the previous
stage's files in DIR and writes its own; exit code 2 means bad input.
"""

import argparse
import json
import os
import re
import sys
import time
from urllib.parse import urlparse


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_config(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml  # type: ignore
        except ImportError:
            fail(f"{path} is not JSON and PyYAML is not installed to read it as YAML")
        return yaml.safe_load(text)


def authors_from_config(config):
    """[(user_full_name, [links])] from either config shape."""
    if not isinstance(config, dict) or not isinstance(config.get("parameters"), dict):
        fail("config has no `parameters` mapping")
    params = config["parameters"]
    if "author_links" in params:
        pairs = [(entry.get("user_full_name"), entry.get("links")) for entry in params["author_links"]]
    elif "links" in params:
        pairs = [(params.get("user_full_name"), params.get("links"))]
    else:
        fail("config `parameters` has neither `links` nor `author_links`")
    for name, links in pairs:
        if not isinstance(name, str) or not name.strip():
            fail("an author has no `user_full_name`")
        if not isinstance(links, list) or not all(isinstance(link, str) for link in links):
            fail(f"`links` of {name} is not a list of URLs")
    return pairs


def read_jsonl(out, name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        fail(f"{path} is missing; did the previous stage run?")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(out, name, rows):
    path = os.path.join(out, name)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {path}")


def title_from_link(link):
    path = urlparse(link).path.rstrip("/")
    slug = path.rsplit("/", 1)[-1] or urlparse(link).netloc
    slug = re.sub(r"\.html?$", "", slug)
    slug = re.sub(r"-[0-9a-f]{12}$", "", slug)  # Medium/Substack id suffix
    slug = re.sub(r"^\d{4}-\d{2}-\d{2}_", "", slug)  # dated blog posts
    words = [word for word in re.split(r"[-_]+", slug) if word]
    return " ".join(words).strip().capitalize() or link


def digital_data_etl(args):
    config = read_config(args.config)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config_seen.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, ensure_ascii=False)
    rows = []
    for author, links in authors_from_config(config):
        print(f"author {author}: {len(links)} link(s)")
        for link in links:
            rows.append({
                "author": author,
                "link": link,
                "platform": urlparse(link).netloc,
                "crawled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
            print(f"  crawled (offline) {link}")
    write_jsonl(args.out, "raw_documents.jsonl", rows)


def feature_engineering(args):
    rows = []
    for doc in read_jsonl(args.out, "raw_documents.jsonl"):
        title = title_from_link(doc["link"])
        rows.append({**doc, "title": title, "tokens": title.lower().split()})
    write_jsonl(args.out, "cleaned_documents.jsonl", rows)


def generate_instruct_datasets(args):
    rows = [
        {
            "instruction": f"Write an article titled \"{doc['title']}\" in the voice of {doc['author']}.",
            "answer": f"(the article at {doc['link']})",
        }
        for doc in read_jsonl(args.out, "cleaned_documents.jsonl")
    ]
    write_jsonl(args.out, "instruct_dataset.jsonl", rows)


def generate_preference_datasets(args):
    rows = [
        {
            "prompt": f"Summarise \"{doc['title']}\".",
            "chosen": f"{doc['author']} explains {doc['title'].lower()} ({doc['platform']}).",
            "rejected": "I cannot help with that.",
        }
        for doc in read_jsonl(args.out, "cleaned_documents.jsonl")
    ]
    write_jsonl(args.out, "preference_dataset.jsonl", rows)


def summary(args):
    docs = read_jsonl(args.out, "cleaned_documents.jsonl")
    instruct = read_jsonl(args.out, "instruct_dataset.jsonl")
    preference = read_jsonl(args.out, "preference_dataset.jsonl")
    authors = sorted({doc["author"] for doc in docs})
    lines = [
        f"# Demo run {args.run_id or ''}".rstrip(),
        "",
        f"- authors: {', '.join(authors)}",
        f"- documents: {len(docs)}",
        f"- instruct samples: {len(instruct)}",
        f"- preference samples: {len(preference)}",
        "",
        "## Documents",
        "",
    ] + [f"- {doc['author']}: [{doc['title']}]({doc['link']})" for doc in docs]
    path = os.path.join(args.out, "summary.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


STAGES = {
    "digital_data_etl": digital_data_etl,
    "feature_engineering": feature_engineering,
    "generate_instruct_datasets": generate_instruct_datasets,
    "generate_preference_datasets": generate_preference_datasets,
    "summary": summary,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--config", help="the run's config file (digital_data_etl only)")
    parser.add_argument("--out", required=True, help="directory for the stage outputs")
    parser.add_argument("--run-id", default="", help="the run id, for the summary")
    args = parser.parse_args()
    if args.stage == "digital_data_etl" and not args.config:
        fail("digital_data_etl needs --config")
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()

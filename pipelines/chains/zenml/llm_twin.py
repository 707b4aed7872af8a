"""The LLM Twin's ZenML pipelines in miniature: the book's exact signatures and step names
(PacktPublishing/LLM-Engineers-Handbook, pipelines/*.py), small real steps, no MongoDB, Qdrant or
LLM API. The "data warehouse" and the "vector DB" are JSON files under $LLM_TWIN_DATA_DIR
(default ./llm_twin_data):

    users/<id>.json                  get_or_create_user
    raw/<sha256(link)>.json          crawl_links: one fetched article (ArticleDocument)
    cleaned/<id>.json, chunks.jsonl  feature_engineering (load_to_vector_db)
    datasets/instruction.json        generate_datasets (train/test split)

crawl_links really fetches each link (http/https, 10 s timeout, 2 MiB cap, 5 redirects, non-public
addresses refused unless LLM_TWIN_ALLOW_PRIVATE_NETWORKS=1) and records per domain
{"successful", "total"} as the book does, plus each fetched page's title and word count, as the
metadata of its `crawled_links` output. A link that cannot be fetched is logged and counted; the
step goes on.
"""

import hashlib
import ipaddress
import json
import os
import random
import re
import socket
import urllib.error
import urllib.request
import uuid
from enum import Enum
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

from typing_extensions import Annotated
from zenml import get_step_context, pipeline, step
from zenml.logger import get_logger

logger = get_logger(__name__)

USER_AGENT = "llm-twin-zenml-chain/0.1 (+https://github.com/PacktPublishing/LLM-Engineers-Handbook)"
MAX_BYTES = 2 * 1024 * 1024
TIMEOUT = 10
MAX_REDIRECTS = 5


class DatasetType(Enum):
    INSTRUCTION = "instruction"
    PREFERENCE = "preference"


def data_dir(*parts: str) -> Path:
    path = Path(os.environ.get("LLM_TWIN_DATA_DIR", "llm_twin_data"), *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def split_user_full_name(user_full_name: str) -> tuple[str, str]:
    names = user_full_name.split()
    if not names:
        raise ValueError("user_full_name is empty")
    if len(names) == 1:
        return names[0], names[0]
    return " ".join(names[:-1]), names[-1]


# ---- fetching ---------------------------------------------------------------------------------


class RefusedAddress(Exception):
    pass


def check_public(url: str) -> None:
    """Refuses a URL whose host resolves to a non-public address (unless allowed)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise RefusedAddress(f"{url!r} is not an http(s) URL")
    if os.environ.get("LLM_TWIN_ALLOW_PRIVATE_NETWORKS") == "1":
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    for info in socket.getaddrinfo(parsed.hostname, port, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise RefusedAddress(
                f"{parsed.hostname} resolves to {address}, which is not a public address "
                "(set LLM_TWIN_ALLOW_PRIVATE_NETWORKS=1 to allow it)"
            )


class CheckedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_public(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


OPENER = urllib.request.build_opener(CheckedRedirects)


def fetch(url: str) -> tuple[str, str]:
    """(final URL, decoded HTML), at most MAX_BYTES."""
    check_public(url)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with OPENER.open(request, timeout=TIMEOUT) as response:
        body = response.read(MAX_BYTES + 1)
        if len(body) > MAX_BYTES:
            raise ValueError(f"the page is larger than {MAX_BYTES >> 20} MiB")
        charset = response.headers.get_content_charset() or "utf-8"
        return response.geturl(), body.decode(charset, errors="replace")


class ArticleText(HTMLParser):
    """The title and the paragraphs of a page (inside <article> or <main> when it has one)."""

    SKIP = {"script", "style", "nav", "header", "footer", "aside", "noscript", "form"}
    BLOCKS = {"p", "h1", "h2", "h3", "h4", "li", "blockquote", "pre"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.skip = 0
        self.in_title = False
        self.main = 0
        self.block = None
        self.blocks = []  # (inside article/main, text)

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "title":
            self.in_title = True
        elif tag in ("article", "main"):
            self.main += 1
        elif tag in self.BLOCKS and self.skip == 0:
            self.block = []

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        elif tag == "title":
            self.in_title = False
        elif tag in ("article", "main") and self.main:
            self.main -= 1
        elif tag in self.BLOCKS and self.block is not None:
            text = " ".join("".join(self.block).split())
            if text:
                self.blocks.append((self.main > 0, text))
            self.block = None

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        elif self.block is not None and self.skip == 0:
            self.block.append(data)

    def text(self) -> str:
        inside = [text for main, text in self.blocks if main]
        return "\n\n".join(inside or [text for _, text in self.blocks])


def crawl(link: str, user: dict) -> dict:
    final_url, html = fetch(link)
    parser = ArticleText()
    parser.feed(html)
    parser.close()
    title = " ".join(parser.title.split())
    document = {
        "id": hashlib.sha256(link.encode()).hexdigest(),
        "link": link,
        "final_url": final_url,
        "platform": urlparse(link).netloc,
        "author_id": user["id"],
        "author_full_name": user["full_name"],
        "content": {"Title": title, "Content": parser.text()},
    }
    path = data_dir("raw") / f"{document['id']}.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return document


# ---- digital_data_etl -------------------------------------------------------------------------


@step
def get_or_create_user(user_full_name: str) -> Annotated[dict, "user"]:
    first_name, last_name = split_user_full_name(user_full_name)
    full_name = f"{first_name} {last_name}"
    user = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"llm-twin-user:{full_name}")),
        "first_name": first_name,
        "last_name": last_name,
        "full_name": full_name,
    }
    path = data_dir("users") / f"{user['id']}.json"
    if not path.exists():
        path.write_text(json.dumps(user, ensure_ascii=False), encoding="utf-8")
    return user


@step
def crawl_links(user: dict, links: list[str]) -> Annotated[list[str], "crawled_links"]:
    logger.info(f"Starting to crawl {len(links)} link(s).")
    metadata: dict = {}
    pages: dict = {}
    successful = 0
    for link in links:
        # The book keys by netloc; ZenML refuses `:` in metadata keys, so a port is left out.
        domain = urlparse(link).hostname or "unknown"
        entry = metadata.setdefault(domain, {"successful": 0, "total": 0})
        entry["total"] += 1
        try:
            document = crawl(link, user)
        except (OSError, ValueError, RefusedAddress, urllib.error.URLError) as err:
            logger.error(f"An error occurred while crawling {link}: {err}")
            pages[link] = {"error": str(err)[:300]}
            continue
        entry["successful"] += 1
        successful += 1
        pages[link] = {
            "title": document["content"]["Title"][:300],
            "words": len(document["content"]["Content"].split()),
        }
    metadata["pages"] = pages
    get_step_context().add_output_metadata(output_name="crawled_links", metadata=metadata)
    logger.info(f"Successfully crawled {successful} / {len(links)} links.")
    return links


@pipeline
def digital_data_etl(user_full_name: str, links: list[str]) -> str:
    user = get_or_create_user(user_full_name)
    last_step = crawl_links(user=user, links=links)

    return last_step.invocation_id


# ---- feature_engineering ----------------------------------------------------------------------


@step
def query_data_warehouse(author_full_names: list[str]) -> Annotated[list, "raw_documents"]:
    wanted = {" ".join(split_user_full_name(name)) for name in author_full_names}
    documents = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(data_dir("raw").glob("*.json"))
    ]
    documents = [doc for doc in documents if doc["author_full_name"] in wanted]
    get_step_context().add_output_metadata(
        output_name="raw_documents", metadata={"num_documents": len(documents)}
    )
    return documents


def clean_text(text: str) -> str:
    """Odd characters out, whitespace collapsed; paragraphs (blank-line separated) kept apart."""
    paragraphs = (re.sub(r"[^\w\s.,!?;:'\"()-]", " ", part) for part in text.split("\n\n"))
    return "\n\n".join(" ".join(part.split()) for part in paragraphs if part.strip())


@step
def clean_documents(documents: list) -> Annotated[list, "cleaned_documents"]:
    return [
        {
            "id": doc["id"],
            "link": doc["link"],
            "platform": doc["platform"],
            "author_full_name": doc["author_full_name"],
            "title": clean_text(doc["content"]["Title"]),
            "content": clean_text(doc["content"]["Content"]),
        }
        for doc in documents
    ]


@step
def chunk_and_embed(cleaned_documents: list) -> Annotated[list, "embedded_documents"]:
    """Chunks of ~50 words with a bag-of-words "embedding" (hashed counts, 64 dimensions)."""
    chunks = []
    for doc in cleaned_documents:
        words = doc["content"].split()
        for start in range(0, len(words), 50):
            piece = words[start : start + 50]
            vector = [0] * 64
            for word in piece:
                vector[int(hashlib.md5(word.lower().encode()).hexdigest(), 16) % 64] += 1
            chunks.append(
                {
                    "document_id": doc["id"],
                    "link": doc["link"],
                    "author_full_name": doc["author_full_name"],
                    "content": " ".join(piece),
                    "embedding": vector,
                }
            )
    return chunks


@step
def load_to_vector_db(documents: list) -> Annotated[bool, "successful"]:
    if documents and "embedding" in documents[0]:
        with open(data_dir() / "chunks.jsonl", "w", encoding="utf-8") as out:
            for chunk in documents:
                out.write(json.dumps(chunk, ensure_ascii=False) + "\n")
    else:
        for doc in documents:
            path = data_dir("cleaned") / f"{doc['id']}.json"
            path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return True


@pipeline
def feature_engineering(author_full_names: list[str], wait_for: str | list[str] | None = None) -> list[str]:
    raw_documents = query_data_warehouse(author_full_names, after=wait_for)

    cleaned_documents = clean_documents(raw_documents)
    last_step_1 = load_to_vector_db(cleaned_documents)

    embedded_documents = chunk_and_embed(cleaned_documents)
    last_step_2 = load_to_vector_db(embedded_documents)

    return [last_step_1.invocation_id, last_step_2.invocation_id]


# ---- generate_datasets ------------------------------------------------------------------------


@step
def query_feature_store() -> Annotated[list, "queried_cleaned_documents"]:
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(data_dir("cleaned").glob("*.json"))
    ]


@step
def create_prompts(documents: list, dataset_type: DatasetType) -> Annotated[list, "prompts"]:
    prompts = []
    for doc in documents:
        sentences = [
            s.strip()
            for paragraph in doc["content"].split("\n\n")
            for s in re.split(r"(?<=[.!?])\s+", paragraph)
            if len(s.split()) >= 4
        ]
        for sentence in sentences:
            prompts.append({"document_id": doc["id"], "title": doc["title"], "sentence": sentence})
    return prompts


def split(samples: list, test_split_size: float) -> dict:
    rng = random.Random(42)
    samples = list(samples)
    rng.shuffle(samples)
    test = int(round(len(samples) * test_split_size))
    return {"train": samples[test:], "test": samples[:test]}


@step
def generate_intruction_dataset(prompts: list, test_split_size: float, mock: bool) -> Annotated[dict, "instruct_datasets"]:
    """One pair per sentence of the article: the instruction asks for it, the answer is it
    (no LLM, so `mock` changes nothing)."""
    samples = [
        {"instruction": f"Write the sentence of the article \"{p['title']}\" that starts with \"{' '.join(p['sentence'].split()[:3])}\".", "answer": p["sentence"]}
        for p in prompts
    ]
    dataset = split(samples, test_split_size)
    (data_dir("datasets") / "instruction.json").write_text(json.dumps(dataset, ensure_ascii=False, indent=1), encoding="utf-8")
    get_step_context().add_output_metadata(
        output_name="instruct_datasets",
        metadata={"train": len(dataset["train"]), "test": len(dataset["test"])},
    )
    return dataset


@step
def generate_preference_dataset(prompts: list, test_split_size: float, mock: bool) -> Annotated[dict, "preference_datasets"]:
    """The article's sentence is chosen over its words in reverse order."""
    samples = [
        {"instruction": f"Write a sentence of \"{p['title']}\".", "chosen": p["sentence"], "rejected": " ".join(reversed(p["sentence"].split()))}
        for p in prompts
    ]
    dataset = split(samples, test_split_size)
    (data_dir("datasets") / "preference.json").write_text(json.dumps(dataset, ensure_ascii=False, indent=1), encoding="utf-8")
    return dataset


@step
def push_to_huggingface(dataset: dict, dataset_id: str) -> None:
    raise RuntimeError("this offline chain does not push to Hugging Face; set push_to_huggingface: false")


@pipeline
def generate_datasets(
    dataset_type: DatasetType = DatasetType.INSTRUCTION,
    test_split_size: float = 0.1,
    push_to_huggingface: bool = False,
    dataset_id: str | None = None,
    mock: bool = False,
    wait_for: str | list[str] | None = None,
) -> None:
    cleaned_documents = query_feature_store(after=wait_for)
    prompts = create_prompts(documents=cleaned_documents, dataset_type=dataset_type)
    if dataset_type == DatasetType.INSTRUCTION:
        dataset = generate_intruction_dataset(prompts=prompts, test_split_size=test_split_size, mock=mock)
    elif dataset_type == DatasetType.PREFERENCE:
        dataset = generate_preference_dataset(prompts=prompts, test_split_size=test_split_size, mock=mock)
    else:
        raise ValueError(f"Invalid dataset type: {dataset_type}")

    if push_to_huggingface:
        push_to_huggingface_step(dataset=dataset, dataset_id=dataset_id)


push_to_huggingface_step = push_to_huggingface

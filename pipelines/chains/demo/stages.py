#!/usr/bin/env python3
"""The demo chain's stages: the LLM Twin's pipeline order in miniature, standard library only.

    stages.py digital_data_etl --config FILE --out DIR [--fetch-allow public|loopback]
    stages.py feature_engineering --out DIR
    stages.py generate_instruct_datasets --out DIR
    stages.py generate_preference_datasets --out DIR
    stages.py summary --out DIR [--run-id ID]

digital_data_etl reads the run's config (JSON, which the runner writes as config.yaml; YAML
configs are read too when PyYAML is installed) in the `digital_data_etl` shape
{"parameters": {"user_full_name", "links"}} or the `end_to_end_data` shape
{"parameters": {"author_links": [{"user_full_name", "links"}]}}, fetches every link (short
timeouts, a size cap, a few redirects, public addresses only unless `--fetch-allow loopback`,
which allows this machine only), and writes each page as it came (raw/, raw_documents.jsonl)
and as title and main text (cleaned_documents.jsonl). A link that cannot be fetched is recorded
in failed_links.jsonl and the stage goes on. The later stages work on that text: chunks, an
instruct and a preference dataset made of the articles' own sentences, a summary. Each stage
reads the previous stage's files in DIR and writes its own; exit code 2 means bad input.
"""

import argparse
import hashlib
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

# Fetch bounds: per socket operation, per link (redirects included), for the whole stage.
SOCKET_TIMEOUT = 10.0
LINK_DEADLINE = 20.0
STAGE_BUDGET = 240.0
MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "llm-twin-article-watcher-demo/0.1 (+https://github.com/llm-twin/article-watcher)"
# What the cleaned text and the datasets keep.
MAX_TEXT_CHARS = 200_000
CHUNK_WORDS = 120
CHUNK_OVERLAP = 20
SAMPLES_PER_DOCUMENT = 5


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def printable(text, limit=160):
    """Network text made safe for the stage log: one line, no control characters, cut short."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        entries = params["author_links"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            fail("`author_links` is not a list of {user_full_name, links}")
        pairs = [(entry.get("user_full_name"), entry.get("links")) for entry in entries]
    elif "links" in params:
        pairs = [(params.get("user_full_name"), params.get("links"))]
    else:
        fail("config `parameters` has neither `links` nor `author_links`")
    for name, links in pairs:
        if not isinstance(name, str) or not name.strip():
            fail("an author has no `user_full_name`")
        if not isinstance(links, list) or not all(isinstance(link, str) for link in links):
            fail(f"`links` of {printable(name)} is not a list of URLs")
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


# --- fetching -------------------------------------------------------------------------------


class FetchError(Exception):
    """Why one link could not be fetched (the message is safe to print)."""


class AddressRule:
    """Which addresses a fetch may connect to: public ones, or (`loopback`) this machine only."""

    def __init__(self, allow):
        if allow not in ("public", "loopback"):
            fail(f"--fetch-allow is `{printable(allow)}`; expected `public` or `loopback`")
        self.loopback = allow == "loopback"

    def allows(self, address):
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if self.loopback:
            return ip.is_loopback
        return ip.is_global and not ip.is_multicast

    def resolve(self, host, port):
        """The addresses of `host` this rule allows; refuses names it need not look up."""
        if self.loopback and not _is_ip(host) and host != "localhost" and not host.endswith(".localhost"):
            raise FetchError(f"`{printable(host)}` is not this machine (only loopback is allowed)")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise FetchError(f"cannot resolve `{printable(host)}`: {printable(e)}") from None
        allowed = [(info[0], info[4]) for info in infos if self.allows(info[4][0])]
        if not allowed:
            shown = ", ".join(sorted({info[4][0] for info in infos}))
            kind = "loopback" if self.loopback else "public"
            raise FetchError(f"`{printable(host)}` resolves to {shown}, not a {kind} address; refused")
        return allowed


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _guarded(rule):
    """A create_connection that connects only to the addresses `rule` allows (checked, then
    used: no second lookup an attacker's DNS could answer differently)."""

    def create_connection(address, timeout=SOCKET_TIMEOUT, source_address=None, **_):
        host, port = address
        last = None
        for family, sockaddr in rule.resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                last = e
        raise FetchError(f"cannot connect to `{printable(host)}`: {printable(last)}")

    return create_connection


def fetch(url, rule):
    """(final URL, status, content type, body bytes) of an HTML page at `url`."""
    deadline = time.monotonic() + LINK_DEADLINE
    for _ in range(MAX_REDIRECTS + 1):
        if time.monotonic() > deadline:
            raise FetchError(f"took longer than {LINK_DEADLINE:.0f}s")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"not an http(s) URL: `{printable(url)}`")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"bad port in `{printable(url)}`") from None
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, port, timeout=SOCKET_TIMEOUT, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, port, timeout=SOCKET_TIMEOUT)
        conn._create_connection = _guarded(rule)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(
                "GET",
                target,
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
                    "Accept-Encoding": "identity",
                },
            )
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"HTTP {response.status} without Location")
                url = urljoin(url, location.strip())
                continue
            if response.status != 200:
                raise FetchError(f"HTTP {response.status}")
            content_type = response.getheader("Content-Type", "")
            mime = content_type.split(";", 1)[0].strip().lower()
            if mime not in ("text/html", "application/xhtml+xml", ""):
                raise FetchError(f"not a web page (`{printable(mime)}`)")
            body = bytearray()
            while len(body) <= MAX_BYTES:
                if time.monotonic() > deadline:
                    raise FetchError(f"took longer than {LINK_DEADLINE:.0f}s")
                chunk = response.read(64 * 1024)
                if not chunk:
                    break
                body.extend(chunk)
            if len(body) > MAX_BYTES:
                raise FetchError(f"page is larger than {MAX_BYTES} bytes")
            return url, response.status, content_type, bytes(body)
        except FetchError:
            raise
        except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as e:
            raise FetchError(f"{type(e).__name__}: {printable(e)}") from None
        finally:
            conn.close()
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def decode(body, content_type):
    match = re.search(r"charset=([\w.:-]+)", content_type or "", re.I)
    if not match:
        match = re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", body[:4096], re.I)
    charset = match.group(1) if match else "utf-8"
    if isinstance(charset, bytes):
        charset = charset.decode("ascii", "replace")
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


# --- extraction -----------------------------------------------------------------------------

SKIP = {"script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form", "button", "iframe", "head"}
BLOCK = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "td", "th", "dd", "dt", "figcaption", "div", "section", "article", "main", "br", "hr", "tr", "ul", "ol", "table"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Extractor(HTMLParser):
    """Title and paragraphs of a page; paragraphs inside <article> or <main> are kept apart, as
    they are the article itself when the page has them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.skipping = 0
        self.in_title = False
        self.title = ""
        self.og_title = ""
        self.h1 = ""
        self.in_h1 = False
        self.paragraphs = []  # (where, text): where is "article", "main" or "body"
        self.current = []

    def where(self):
        if "article" in self.stack:
            return "article"
        if "main" in self.stack:
            return "main"
        return "body"

    def flush(self):
        text = " ".join("".join(self.current).split())
        if text:
            self.paragraphs.append((self.where(), text))
        self.current = []

    def handle_starttag(self, tag, attrs):
        if tag == "meta":
            values = dict(attrs)
            if values.get("property") == "og:title" and values.get("content"):
                self.og_title = values["content"]
            return
        if tag in VOID:
            if tag in ("br", "hr"):
                self.flush()
            return
        if tag in BLOCK:
            self.flush()
        self.stack.append(tag)
        if tag in SKIP:
            self.skipping += 1
        if tag == "title":
            self.in_title = True
        if tag == "h1" and not self.h1:
            self.in_h1 = True

    def handle_endtag(self, tag):
        if tag in VOID or tag not in self.stack:
            return
        if tag in BLOCK:
            self.flush()
        while self.stack:
            top = self.stack.pop()
            if top in SKIP:
                self.skipping -= 1
            if top == "title":
                self.in_title = False
            if top == "h1":
                self.in_h1 = False
            if top == tag:
                break

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self.in_h1:
            self.h1 += data
        if not self.skipping and not self.in_title:
            self.current.append(data)


def extract(page):
    """(title, main text) of an HTML page."""
    parser = Extractor()
    try:
        parser.feed(page)
        parser.close()
    except (AssertionError, ValueError):
        pass
    parser.flush()
    title = next(
        (" ".join(t.split()) for t in (parser.og_title, parser.h1, parser.title) if t.strip()),
        "",
    )
    for where in ("article", "main", "body"):
        paragraphs = [text for place, text in parser.paragraphs if place == where]
        if where != "body" and sum(len(p.split()) for p in paragraphs) < 30:
            continue
        break
    if paragraphs and paragraphs[0] == title:
        paragraphs = paragraphs[1:]
    text = "\n\n".join(paragraphs)[:MAX_TEXT_CHARS]
    return title[:500], text


def clean(text):
    """The text the later stages use: printable characters, single spaces, paragraphs kept."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        paragraph = "".join(c if c.isprintable() else " " for c in paragraph)
        paragraph = " ".join(paragraph.split())
        if paragraph:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


# --- stages ---------------------------------------------------------------------------------


def digital_data_etl(args):
    config = read_config(args.config)
    rule = AddressRule(args.fetch_allow)
    os.makedirs(os.path.join(args.out, "raw"), exist_ok=True)
    with open(os.path.join(args.out, "config_seen.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, ensure_ascii=False)
    started = time.monotonic()
    raw_rows, cleaned_rows, failed_rows = [], [], []
    for author, links in authors_from_config(config):
        print(f"author {printable(author)}: {len(links)} link(s)")
        for link in links:
            crawled_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            try:
                if time.monotonic() - started > STAGE_BUDGET:
                    raise FetchError(f"skipped: the stage spent its {STAGE_BUDGET:.0f}s fetch budget")
                final_url, status, content_type, body = fetch(link, rule)
                page = decode(body, content_type)
                title, text = extract(page)
                cleaned = clean(text)
                if not cleaned:
                    raise FetchError("the page has no text")
            except FetchError as e:
                failed_rows.append({"author": author, "link": link, "error": str(e), "crawled_at": crawled_at})
                print(f"  could not fetch {printable(link)}: {e}")
                continue
            digest = hashlib.sha256(link.encode("utf-8")).hexdigest()[:16]
            raw_name = f"raw/{digest}.html"
            with open(os.path.join(args.out, raw_name), "wb") as handle:
                handle.write(body)
            platform = urlsplit(final_url).hostname or ""
            raw_rows.append({
                "author": author,
                "link": link,
                "final_url": final_url,
                "platform": platform,
                "status": status,
                "content_type": content_type,
                "bytes": len(body),
                "raw_file": raw_name,
                "crawled_at": crawled_at,
                "content": {"title": title, "content": text},
            })
            words = len(cleaned.split())
            cleaned_rows.append({
                "author": author,
                "link": link,
                "platform": platform,
                "title": title,
                "text": cleaned,
                "words": words,
            })
            print(f"  fetched {printable(link)}: \"{printable(title, 80)}\" ({words} words)")
    write_jsonl(args.out, "raw_documents.jsonl", raw_rows)
    write_jsonl(args.out, "cleaned_documents.jsonl", cleaned_rows)
    write_jsonl(args.out, "failed_links.jsonl", failed_rows)


def chunk_words(words):
    step = CHUNK_WORDS - CHUNK_OVERLAP
    for start in range(0, max(len(words) - CHUNK_OVERLAP, 1), step):
        yield start, words[start:start + CHUNK_WORDS]


def feature_engineering(args):
    rows = []
    for doc in read_jsonl(args.out, "cleaned_documents.jsonl"):
        words = doc["text"].split()
        for index, (start, part) in enumerate(chunk_words(words)):
            rows.append({
                "author": doc["author"],
                "link": doc["link"],
                "title": doc["title"],
                "chunk": index,
                "first_word": start,
                "words": len(part),
                "text": " ".join(part),
            })
    write_jsonl(args.out, "chunks.jsonl", rows)


SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def sentences(text):
    out = []
    for paragraph in text.split("\n\n"):
        for sentence in SENTENCE_END.split(paragraph):
            sentence = sentence.strip()
            if len(sentence.split()) >= 4:
                out.append(sentence)
    return out


def sentence_samples(out):
    """(document, sentence, next sentence) for up to SAMPLES_PER_DOCUMENT pairs per article."""
    for doc in read_jsonl(out, "cleaned_documents.jsonl"):
        found = sentences(doc["text"])
        for before, after in list(zip(found, found[1:]))[:SAMPLES_PER_DOCUMENT]:
            yield doc, before, after


def generate_instruct_datasets(args):
    rows = [
        {
            "instruction": f"You are {doc['author']}. Continue your article \"{doc['title']}\" after: \"{before}\"",
            "answer": after,
            "link": doc["link"],
        }
        for doc, before, after in sentence_samples(args.out)
    ]
    write_jsonl(args.out, "instruct_dataset.jsonl", rows)


def generate_preference_datasets(args):
    rows = [
        {
            "prompt": f"Write the sentence that follows \"{before}\" in \"{doc['title']}\" by {doc['author']}.",
            "chosen": after,
            "rejected": "I cannot help with that.",
            "link": doc["link"],
        }
        for doc, before, after in sentence_samples(args.out)
    ]
    write_jsonl(args.out, "preference_dataset.jsonl", rows)


def summary(args):
    docs = read_jsonl(args.out, "cleaned_documents.jsonl")
    failed = read_jsonl(args.out, "failed_links.jsonl")
    chunks = read_jsonl(args.out, "chunks.jsonl")
    instruct = read_jsonl(args.out, "instruct_dataset.jsonl")
    preference = read_jsonl(args.out, "preference_dataset.jsonl")
    authors = sorted({doc["author"] for doc in docs} | {row["author"] for row in failed})
    lines = [
        f"# Demo run {args.run_id or ''}".rstrip(),
        "",
        f"- authors: {', '.join(printable(a) for a in authors)}",
        f"- documents: {len(docs)} ({sum(doc['words'] for doc in docs)} words)",
        f"- links not fetched: {len(failed)}",
        f"- chunks: {len(chunks)}",
        f"- instruct samples: {len(instruct)}",
        f"- preference samples: {len(preference)}",
        "",
        "## Documents",
        "",
    ] + [
        f"- {printable(doc['author'])}: [{printable(doc['title'], 120)}]({printable(doc['link'], 2000)}), {doc['words']} words"
        for doc in docs
    ]
    if failed:
        lines += ["", "## Not fetched", ""] + [
            f"- {printable(row['author'])}: {printable(row['link'], 2000)}: {row['error']}" for row in failed
        ]
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
    parser.add_argument(
        "--fetch-allow",
        default="public",
        help="`public`: fetch from public addresses only (default); `loopback`: this machine only",
    )
    args = parser.parse_args()
    if args.stage == "digital_data_etl" and not args.config:
        fail("digital_data_etl needs --config")
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()

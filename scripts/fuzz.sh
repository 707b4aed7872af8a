#!/usr/bin/env bash
# scripts/fuzz.sh [seconds-per-target] [target...]: runs the cargo-fuzz targets of fuzz/ one after
# the other (one job each, nightly toolchain, no sanitizer: the code is safe Rust, so a panic or
# an abort is the crash to find), each for the given seconds (default 60), and prints per target
# the executions, coverage (libFuzzer's `cov:` edges and `ft:` features) and crashes.
#
# Each run starts from the committed corpus (fuzz/corpus/<target>) plus seeds taken from the
# repository's own fixtures (the real-world corpus in watcher/testdata/corpus/public, the
# chain files, watcher.toml, the README's config and chain examples, the OPML test documents);
# what it finds goes to fuzz/corpus-work/<target> (not committed). With FUZZ_KEEP=1 the inputs
# of corpus-work that add coverage and are under 16 KiB are merged into the committed corpus.
# FUZZ_SEED_ONLY=1 only writes the seeds into corpus-work. Crashes land in fuzz/artifacts/<target>/: turn each into a regression test (README, Fuzzing).
#
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz --locked`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
all=(feed sitemap page canonical config opml chain)
if [ "$#" -eq 0 ]; then targets=("${all[@]}"); else targets=("$@"); fi
public=watcher/testdata/corpus/public

# Seeds of one target into $1 (a directory), from fixtures only (never corpus/holdout).
seed() {
    local target="$1" dir="$2"
    mkdir -p "$dir"
    case "$target" in
        feed)
            cp "$public"/* "$dir"/
            # The HTTP charset beats the document's own guesses: seed that header too.
            printf 'content-type: text/xml; charset=windows-1251\n' | cat - "$public/ru-windows1251.rss.xml" >"$dir/ct-windows1251"
            printf 'content-type: application/rss+xml; charset=utf-8\n' | cat - "$public/dvbbs-gb2312.rss.xml" >"$dir/ct-utf8-over-gb2312"
            ;;
        sitemap)
            cp "$public"/*sitemap* "$dir"/
            gzip -c "$public/oxrick-jekyll.sitemap.xml" >"$dir/oxrick.xml.gz"
            printf 'include: /20\n' | cat - "$public/oxrick-jekyll.sitemap.xml" >"$dir/include-oxrick"
            printf 'https://example.com/a\nhttps://example.com/b?x=1\n' >"$dir/plain-text"
            ;;
        page)
            cp "$public"/*.html "$dir"/
            printf 'selector: article h2 a\n' | cat - "$public/sixcolors-home.html" >"$dir/sel-sixcolors"
            printf 'selector: .post-title > a[href]\n' | cat - "$public/nixos-home.html" >"$dir/sel-nixos"
            ;;
        canonical)
            grep -aohE 'https?://[^"<> ]{1,200}' "$public"/* | sort -u | awk 'NR <= 200' |
                split -l 1 -a 3 - "$dir/url-"
            for f in "$dir"/url-*; do printf '%s' "$(cat "$f")" >"$f"; done
            printf 'HTTPS://Example.COM:443/a/../b?utm_source=x&id=1&ref=y&q=%%20#frag' >"$dir/tracking"
            printf 'http://[::ffff:127.0.0.1]:80/?fbclid=1' >"$dir/ipv6-mapped"
            ;;
        config | chain)
            if [ "$target" = config ]; then
                cp watcher.toml "$dir/watcher.toml"
                readme=README.md
            else
                cp pipelines/chains/*.toml "$dir"/
                readme=pipelines/README.md
                printf 'python -m etl --config {config} --run {run_id} {{literal}} {param.model}' >"$dir/template"
            fi
            python3 - "$readme" "$dir" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for i, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
    open(f"{sys.argv[2]}/readme-{i}.toml", "w", encoding="utf-8").write(block)
EOF
            ;;
        opml)
            python3 - "$dir" watcher/src/opml.rs watcher/src/subscriptions.rs <<'EOF'
import re, sys
n = 0
for path in sys.argv[2:]:
    for doc in re.findall(r'r#"(.*?)"#', open(path, encoding="utf-8").read(), re.S):
        if "<opml" in doc or "<outline" in doc:
            open(f"{sys.argv[1]}/test-{n}.opml", "w", encoding="utf-8").write(doc)
            n += 1
EOF
            ;;
    esac
}

if [ "${FUZZ_SEED_ONLY:-0}" = 1 ]; then
    for target in "${targets[@]}"; do seed "$target" "fuzz/corpus-work/$target"; done
    exit 0
fi
cargo +nightly fuzz build -s none --debug-assertions
printf '%-10s %8s %12s %8s %8s %8s %8s\n' target seconds execs exec/s cov ft crashes
for target in "${targets[@]}"; do
    work=fuzz/corpus-work/$target
    committed=fuzz/corpus/$target
    mkdir -p "$work" "$committed" "fuzz/artifacts/$target"
    seed "$target" "$work"
    log=fuzz/artifacts/$target/last-run.log
    before=$(find "fuzz/artifacts/$target" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
    cargo +nightly fuzz run -s none --debug-assertions "$target" "$work" "$committed" -- \
        -max_total_time="$seconds" -max_len=32768 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || true
    after=$(find "fuzz/artifacts/$target" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')
    printf '%-10s %8s %12s %8s %8s %8s %8s\n' "$target" "$seconds" "$execs" "$rate" "$cov" "$ft" $((after - before))
    if [ "${FUZZ_KEEP:-0}" = 1 ]; then
        small=fuzz/corpus-work/$target.small
        rm -rf "$small" && mkdir -p "$small"
        find "$work" -type f -size -16k -exec cp {} "$small"/ \;
        cargo +nightly fuzz run -s none --debug-assertions "$target" "$committed" "$small" -- \
            -merge=1 -max_len=16384 >>"$log" 2>&1 || true
        rm -rf "$small"
    fi
done

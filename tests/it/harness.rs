//! harness.rs: what the end-to-end scenarios share: a feed server whose feeds the test edits (the
//! watcher's feed kit), a
//! watcher config pointed at it and at a chain (embedded runner or a separate `pipelines` server),
//! and readers for what the chain's stages saw.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use watcher::watch::{OnceOptions, PassReport, Watcher};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The repository's chains (the `demo` chain runs here with nothing else installed).
pub fn repo_chains() -> PathBuf {
    repo().join("pipelines/chains")
}

/// The repository's `demo` chain in the copy that fetches from this machine only
/// (`watcher::demo::offline_chains`): the articles the tests publish are refused, or served on
/// loopback, never fetched from the internet.
pub fn demo_chains() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let into = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("offline-chains-{}", std::process::id()));
        watcher::demo::offline_chains(&repo_chains(), &into).unwrap()
    })
    .clone()
}

/// The `watcher` binary of this build (built first if this test binary was built alone).
pub fn watcher_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/it-<hash> → target/<profile>/watcher
        let bin = exe.parent().unwrap().parent().unwrap().join("watcher");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "watcher", "--bin", "watcher"])
                .current_dir(repo())
                .status()
                .unwrap();
            assert!(status.success(), "cannot build the watcher binary");
        }
        bin
    })
    .clone()
}

/// An author whose feed is a corpus fixture, served at `path`.
#[derive(Clone, Copy)]
pub struct CorpusAuthor {
    pub name: &'static str,
    pub path: &'static str,
    pub fixture: &'static str,
}

pub const LIZ: CorpusAuthor = CorpusAuthor {
    name: "Liz Marley",
    path: "/liz",
    fixture: "medium-lizmarley.rss.xml",
};

pub const RUBEN: CorpusAuthor = CorpusAuthor {
    name: "Ruben Schade",
    path: "/ruben",
    fixture: "rubenerd-hugo.rss.xml",
};

/// A real feed from the watcher's corpus fixtures.
pub fn corpus_feed(name: &str) -> String {
    std::fs::read_to_string(repo().join("watcher/testdata/corpus/public").join(name)).unwrap()
}

/// The feed with one new item on top.
pub fn with_new_item(feed: &str, link: &str) -> String {
    publish_rss(feed, link, &format!("New: {link}"))
}

/// Feeds served on loopback, editable while the test runs (the shared kit, `watcher::feedkit`).
pub use watcher::feedkit::{FeedServer as Feeds, publish_rss};

/// Serves `author`'s fixture feed at its path and returns it.
pub fn publish_corpus(feeds: &Feeds, author: &CorpusAuthor) -> String {
    let feed = corpus_feed(author.fixture);
    feeds.set_feed(author.path, &feed);
    feed
}

pub async fn spawn_feeds() -> Feeds {
    Feeds::spawn().await.unwrap()
}

/// A separate `pipelines serve` (the runner as its own server), started and stopped by the test.
pub struct RunnerServer {
    pub cancel: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), pipelines::Error>>,
}

/// Starts a runner on `addr` (a fixed port, so it can come back on the same one).
pub async fn spawn_runner_at(
    addr: SocketAddr,
    chains: &Path,
    state: &Path,
    token: &str,
) -> RunnerServer {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let settings = pipelines::RunnerSettings::new(chains, state).with_token(token);
    let runner = pipelines::Runner::build(listener, settings).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(runner.run(cancel.clone()));
    RunnerServer { cancel, task }
}

impl RunnerServer {
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Writes watcher.toml in `dir`: `authors` (name, feed URL), the `[trigger]` lines, and
/// `[output] format`.
pub fn write_config(
    dir: &Path,
    authors: &[(&str, String)],
    trigger: &str,
    format: &str,
) -> PathBuf {
    let mut text = format!(
        r#"[watcher]
state_dir = "state"
output_dir = "configs"
listen = "127.0.0.1:0"
batch_window = "0s"

[output]
format = "{format}"

[trigger]
retry_base_delay = "0s"
retry_max_delay = "0s"
follow_interval = "0s"
wait_timeout = "60s"
{trigger}
"#
    );
    for (name, feed) in authors {
        text.push_str(&format!(
            "\n[[authors]]\nname = \"{name}\"\nfeeds = [\"{feed}\"]\n"
        ));
    }
    let path = dir.join("watcher.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replaces `from` with `to` in the config file at `config`.
pub fn edit_config(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(from, to);
    std::fs::write(config, text).unwrap();
}

/// A feed server with one author's feed and a watcher config for them, in `digital_data_etl`
/// format, in a temp dir.
pub struct OneAuthor {
    pub feeds: Feeds,
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    author: CorpusAuthor,
    /// The fixture feed as first served.
    original: String,
}

/// Serves `author`'s fixture feed and writes watcher.toml for them into `dir` with the
/// `[trigger]` lines `trigger`. No pass has run yet.
pub async fn serve_one_author(
    dir: tempfile::TempDir,
    author: CorpusAuthor,
    trigger: &str,
) -> OneAuthor {
    let feeds = spawn_feeds().await;
    let original = publish_corpus(&feeds, &author);
    let cfg = write_config(
        dir.path(),
        &[(author.name, feeds.url(author.path))],
        trigger,
        "digital_data_etl",
    );
    OneAuthor {
        feeds,
        dir,
        cfg,
        author,
        original,
    }
}

impl OneAuthor {
    /// Serves the original feed with new items at `links` on top (the last one topmost).
    pub fn publish_new(&self, links: &[&str]) {
        let feed = links.iter().fold(self.original.clone(), |feed, link| {
            with_new_item(&feed, link)
        });
        self.feeds.set_feed(self.author.path, &feed);
    }

    /// The baseline pass, then one new item: the next pass finds exactly that article.
    pub async fn baseline_then_publish(&self, link: &str) {
        pass(&self.cfg).await;
        self.publish_new(&[link]);
    }

    /// Where the embedded runner keeps its runs.
    pub fn embedded_runner_state(&self) -> PathBuf {
        self.dir.path().join("state/pipelines")
    }
}

/// Writes `<dir>/chains/<name>.toml`, a chain whose one stage `etl` runs `python3 -c code args…`,
/// and returns the chains dir.
pub fn python_stage_chain(dir: &Path, name: &str, code: &str, args: &[&Path]) -> PathBuf {
    let chains = dir.join("chains");
    std::fs::create_dir_all(&chains).unwrap();
    let args: String = args
        .iter()
        .map(|a| format!(", \"{}\"", a.display()))
        .collect();
    std::fs::write(
        chains.join(format!("{name}.toml")),
        format!(
            r#"name = "{name}"
[[stages]]
name = "etl"
run = ["python3", "-c", "{code}"{args}]
"#
        ),
    )
    .unwrap();
    chains
}

/// The built `watcher` binary, quiet, with the config at `config`.
pub fn watcher_cmd(config: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(watcher_bin());
    cmd.arg("--config").arg(config).arg("--quiet");
    cmd
}

/// `once` options that poll every source, due or not (`once --all`).
pub fn all_sources() -> OnceOptions {
    OnceOptions {
        all: true,
        ..OnceOptions::default()
    }
}

/// Opens the watcher configured at `config`.
pub fn open_watcher(config: &Path) -> Watcher {
    Watcher::open(watcher::config::Config::load(config).unwrap()).unwrap()
}

/// `[trigger]` lines for the embedded runner with `chain` from `chains`.
pub fn embedded(chains: &Path, chain: &str) -> String {
    format!(
        "kind = \"embedded\"\npipeline = \"{chain}\"\nchains_dir = \"{}\"\nshutdown_grace = \"10s\"",
        chains.display()
    )
}

/// One `once --all` pass, waiting for the runs it started when the runner is embedded, then
/// shutting the watcher down (as the CLI does).
pub async fn pass(
    config: &Path,
) -> (
    PassReport,
    Vec<(
        String,
        Result<trigger_client::RunStatus, trigger_client::Error>,
    )>,
) {
    let config = watcher::config::Config::load(config).unwrap();
    let embedded = config.trigger.embedded.is_some();
    let w = Watcher::open(config).unwrap();
    let report = w.once(all_sources(), |_, _, _| {}).await.unwrap();
    let runs = if embedded {
        w.wait_for_runs(&report, std::time::Duration::from_secs(60), |_, _| {})
            .await
            .unwrap()
    } else {
        Vec::new()
    };
    w.shutdown().await.unwrap();
    (report, runs)
}

pub async fn status(config: &Path) -> watcher::status::StatusReport {
    let config = watcher::config::Config::load(config).unwrap();
    Watcher::inspect(config).unwrap().status().await.unwrap()
}

/// The outputs directory of the run `pipelines:<id>`.
pub fn run_outputs(runner_state: &Path, run: &trigger_client::RunHandle) -> PathBuf {
    assert_eq!(run.kind, "pipelines");
    runner_state.join("runs").join(&run.id).join("outputs")
}

/// The rows of a JSON Lines file a stage wrote.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the demo chain's first stage read, for the run `pipelines:<id>`.
pub fn config_seen(runner_state: &Path, run: &trigger_client::RunHandle) -> serde_json::Value {
    assert_eq!(run.kind, "pipelines");
    let path = runner_state
        .join("runs")
        .join(&run.id)
        .join("outputs/config_seen.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

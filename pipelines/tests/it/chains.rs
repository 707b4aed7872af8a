//! Chains of real stages: config hand-over, DAG order and parallelism, failure skipping,
//! retries, hostile values as literal argv, `config_dir`, log caps, FIFO queueing.

use serde_json::{Value, json};

use crate::helpers::{spawn_runner, stage, wait_file};

/// Stage 1 copies the config it was given to the scratch dir; stage 2 reads the config again
/// and checks it is the same file content stage 1 saw; stage 3 records the order.
const THREE: &str = r#"
name = "three"
[[stages]]
name = "one"
run = ["sh", "-c", "cp \"$1\" @WORK@/seen-by-one.yaml && echo one >> @WORK@/order", "sh", "{config}"]

[[stages]]
name = "two"
after = ["one"]
run = ["sh", "-c", "cmp \"$1\" @WORK@/seen-by-one.yaml && cp \"$1\" \"$2/two.yaml\" && echo two >> @WORK@/order", "sh", "{config}", "{run_dir}"]

[[stages]]
name = "three"
after = ["two"]
run = ["sh", "-c", "echo three >> @WORK@/order; echo $PIPELINES_STAGE $PIPELINES_CHAIN > @WORK@/env", "sh"]
"#;

#[tokio::test]
async fn three_stages_hand_the_config_down_the_chain() {
    let runner = spawn_runner(&[("three", THREE)]).await;
    let config = json!({"parameters": {"user_full_name": "Maxime Labonne",
        "links": ["https://mlabonne.github.io/blog/posts/a.html", "https://maximelabonne.substack.com/p/b"]}});
    let id = runner.start("three", json!({"config": config})).await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    for name in ["one", "two", "three"] {
        assert_eq!(stage(&run, name)["status"], "succeeded");
        assert_eq!(stage(&run, name)["exit_code"], 0);
        assert_eq!(stage(&run, name)["attempts"], 1);
    }
    let order = std::fs::read_to_string(runner.dirs.work_file("order")).unwrap();
    assert_eq!(order, "one\ntwo\nthree\n");
    assert_eq!(
        std::fs::read_to_string(runner.dirs.work_file("env")).unwrap(),
        "three three\n"
    );

    // The config the stages read is the trigger's config, readable as JSON and as YAML.
    let seen = std::fs::read_to_string(runner.dirs.work_file("seen-by-one.yaml")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&seen).unwrap(), config);
    assert_eq!(serde_yaml_ng::from_str::<Value>(&seen).unwrap(), config);
    let run_dir = std::path::PathBuf::from(run["run_dir"].as_str().unwrap());
    assert!(run_dir.join("config.yaml").is_file());
    assert!(run_dir.join("two.yaml").is_file());
    assert!(run_dir.join("logs/one.log").is_file());
    runner.stop().await;
}

/// `a` and `b` only succeed if they run at the same time (each waits for the other's marker).
const PARALLEL: &str = r#"
name = "parallel"
[[stages]]
name = "start"
run = ["true"]

[[stages]]
name = "a"
after = ["start"]
run = ["sh", "-c", "touch \"$1/a\"; for i in $(seq 100); do [ -e \"$1/b\" ] && exit 0; sleep 0.05; done; exit 1", "sh", "{run_dir}"]

[[stages]]
name = "b"
after = ["start"]
run = ["sh", "-c", "touch \"$1/b\"; for i in $(seq 100); do [ -e \"$1/a\" ] && exit 0; sleep 0.05; done; exit 1", "sh", "{run_dir}"]

[[stages]]
name = "join"
after = ["a", "b"]
run = ["true"]
"#;

#[tokio::test]
async fn independent_stages_run_in_parallel() {
    let runner = spawn_runner(&[("parallel", PARALLEL)]).await;
    let id = runner.start("parallel", json!({"config": {}})).await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let join_started = stage(&run, "join")["started_at"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in ["a", "b"] {
        assert!(stage(&run, name)["finished_at"].as_str().unwrap() <= join_started.as_str());
    }
    runner.stop().await;
}

const FAILING: &str = r#"
name = "failing"
[[stages]]
name = "extract"
run = ["true"]

[[stages]]
name = "broken"
after = ["extract"]
run = ["sh", "-c", "echo about to fail; exit 3"]

[[stages]]
name = "after-broken"
after = ["broken"]
run = ["touch", "@WORK@/must-not-exist"]

[[stages]]
name = "last"
after = ["after-broken"]
run = ["touch", "@WORK@/must-not-exist-either"]
"#;

#[tokio::test]
async fn a_failing_stage_fails_the_run_and_skips_its_dependants() {
    let runner = spawn_runner(&[("failing", FAILING)]).await;
    let id = runner.start("failing", json!({"config": {}})).await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["error"], "stage `broken` failed: exited with code 3");
    assert_eq!(stage(&run, "extract")["status"], "succeeded");
    let broken = stage(&run, "broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["exit_code"], 3);
    assert_eq!(broken["error"], "exited with code 3");
    for name in ["after-broken", "last"] {
        assert_eq!(stage(&run, name)["status"], "skipped");
        assert_eq!(stage(&run, name)["started_at"], Value::Null);
    }
    assert!(!runner.dirs.work_file("must-not-exist").exists());
    assert!(!runner.dirs.work_file("must-not-exist-either").exists());
    runner.stop().await;
}

const FLAKY: &str = r#"
name = "flaky"
[[stages]]
name = "flaky"
retries = 2
run = ["sh", "-c", "echo x >> \"$1/tries\"; [ $(wc -l < \"$1/tries\") -ge 2 ]", "sh", "{run_dir}"]

[[stages]]
name = "hopeless"
after = ["flaky"]
retries = 1
run = ["sh", "-c", "echo attempt; exit 7"]
"#;

#[tokio::test]
async fn retries_rerun_a_failed_stage() {
    let runner = spawn_runner(&[("flaky", FLAKY)]).await;
    let id = runner.start("flaky", json!({"config": {}})).await;
    let run = runner.wait_finished(&id).await;
    let flaky = stage(&run, "flaky");
    assert_eq!(flaky["status"], "succeeded", "{run:#}");
    assert_eq!(flaky["attempts"], 2);
    let hopeless = stage(&run, "hopeless");
    assert_eq!(hopeless["status"], "failed");
    assert_eq!(hopeless["attempts"], 2);
    let (_, log) = runner
        .get(&format!("/api/v1/runs/{id}/stages/hopeless/log"))
        .await;
    let log = log.as_str().unwrap();
    assert_eq!(log.matches("attempt\n").count(), 2, "{log}");
    assert!(log.contains("attempt 2/2"), "{log}");
    runner.stop().await;
}

/// Writes its argv (after the output path) as JSON, so the test sees exactly what arrived.
const ARGV: &str = r#"
name = "argv"
[[stages]]
name = "argv"
run = ["python3", "-c", "import sys, json; json.dump(sys.argv[2:], open(sys.argv[1], 'w'))",
       "@WORK@/argv.json", "{param.title}", "--title={param.title}", "{config}", "{run_id}", "{{literal}}"]
env = { HOSTILE = "{param.title}" }

[[stages]]
name = "env"
after = ["argv"]
run = ["python3", "-c", "import os, sys; open(sys.argv[1], 'w').write(os.environ['HOSTILE'])", "@WORK@/env.txt"]
env = { HOSTILE = "{param.title}" }
"#;

#[tokio::test]
async fn hostile_values_reach_the_stage_as_one_literal_argument() {
    let runner = spawn_runner(&[("argv", ARGV)]).await;
    let hostile = r#"a b "c" 'd' ;rm -rf @WORK@ && echo pwned $(id) `id` | tee x > y; {config} \n"#;
    let id = runner
        .start(
            "argv",
            json!({"config": {"parameters": {"user_full_name": hostile}}, "params": {"title": hostile}}),
        )
        .await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let argv: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(runner.dirs.work_file("argv.json")).unwrap())
            .unwrap();
    let config = format!("{}/config.yaml", run["run_dir"].as_str().unwrap());
    assert_eq!(
        argv,
        vec![
            hostile.to_owned(),
            format!("--title={hostile}"),
            config.clone(),
            id.clone(),
            "{literal}".to_owned(),
        ]
    );
    assert!(
        config.contains("'with' \"quotes\"; and spaces"),
        "the state dir path is hostile too"
    );
    assert_eq!(
        std::fs::read_to_string(runner.dirs.work_file("env.txt")).unwrap(),
        hostile
    );
    assert!(runner.dirs.work.is_dir(), "nothing was removed");
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(seen["parameters"]["user_full_name"], hostile);
    runner.stop().await;
}

/// Like the LLM Twin: the config is copied into a `configs/` dir and passed by bare file name.
const CONFIG_DIR: &str = r#"
name = "config-dir"
workdir = "../work"
[[stages]]
name = "etl"
config_dir = "../work/configs"
run = ["sh", "-c", "test \"$1\" = \"$(basename \"$2\")\" && cp \"configs/$1\" copied.yaml && echo \"$1\" > name.txt", "sh", "{config_name}", "{config}"]
"#;

#[tokio::test]
async fn config_dir_gets_a_copy_named_for_the_run() {
    let runner = spawn_runner(&[("config-dir", CONFIG_DIR)]).await;
    std::fs::create_dir_all(runner.dirs.work_file("configs")).unwrap();
    let config =
        json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://x/1"]}});
    let id = runner.start("config-dir", json!({"config": config})).await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let name = wait_file(&runner.dirs.work_file("name.txt")).await;
    assert_eq!(name, format!("pipelines-{id}.yaml"));
    let copied = std::fs::read_to_string(runner.dirs.work_file("copied.yaml")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&copied).unwrap(), config);
    assert!(
        !runner.dirs.work_file(&format!("configs/{name}")).exists(),
        "the copy is removed after the stage"
    );
    runner.stop().await;
}

const CHATTY: &str = r#"
name = "chatty"
[[stages]]
name = "chatty"
run = ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"]
"#;

#[tokio::test]
async fn stage_logs_are_capped() {
    let dirs = crate::helpers::Dirs::new(&[("chatty", CHATTY)]);
    let settings = dirs.settings().with_log_cap(4096);
    let runner = crate::helpers::spawn_runner_in(dirs, settings).await;
    let id = runner.start("chatty", json!({"config": {}})).await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(
        run["status"], "succeeded",
        "a full log does not block the stage: {run:#}"
    );
    let log_path = format!("{}/logs/chatty.log", run["run_dir"].as_str().unwrap());
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.len() < 4096 + 200, "{} bytes", log.len());
    assert!(log.contains("line-0-"));
    assert!(!log.contains("line-2999-"));
    assert!(log.ends_with(
        "[pipelines] log truncated at 4096 bytes; the rest of the output was dropped\n"
    ));
    runner.stop().await;
}

const QUEUED: &str = r#"
name = "queued"
[[stages]]
name = "work"
run = ["sh", "-c", "echo start-$1 >> @WORK@/log; sleep 0.3; echo end-$1 >> @WORK@/log", "sh", "{param.n}"]
"#;

const TWO_AT_ONCE: &str = r#"
name = "two-at-once"
concurrency = 2
[[stages]]
name = "work"
run = ["sh", "-c", "touch \"@WORK@/$1\"; for i in $(seq 100); do [ -e \"@WORK@/$2\" ] && exit 0; sleep 0.05; done; exit 1", "sh", "{param.me}", "{param.other}"]
"#;

#[tokio::test]
async fn runs_of_a_chain_queue_in_order_under_its_concurrency_limit() {
    let runner = spawn_runner(&[("queued", QUEUED), ("two-at-once", TWO_AT_ONCE)]).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(
            runner
                .start("queued", json!({"config": {}, "params": {"n": n}}))
                .await,
        );
    }
    let running = runner
        .wait_run(&ids[0], |run| run["status"] == "running")
        .await;
    assert_eq!(running["status"], "running");
    assert_eq!(runner.run(&ids[1]).await["status"], "queued");
    assert_eq!(runner.run(&ids[2]).await["status"], "queued");
    for id in &ids {
        assert_eq!(runner.wait_finished(id).await["status"], "succeeded");
    }
    let log = std::fs::read_to_string(runner.dirs.work_file("log")).unwrap();
    assert_eq!(
        log, "start-1\nend-1\nstart-2\nend-2\nstart-3\nend-3\n",
        "one at a time, FIFO"
    );

    // With concurrency 2, two runs that wait for each other both succeed.
    let a = runner
        .start(
            "two-at-once",
            json!({"config": {}, "params": {"me": "x", "other": "y"}}),
        )
        .await;
    let b = runner
        .start(
            "two-at-once",
            json!({"config": {}, "params": {"me": "y", "other": "x"}}),
        )
        .await;
    assert_eq!(runner.wait_finished(&a).await["status"], "succeeded");
    assert_eq!(runner.wait_finished(&b).await["status"], "succeeded");
    runner.stop().await;
}

#[tokio::test]
async fn the_default_config_is_used_when_the_trigger_sends_none() {
    let chain = r#"
name = "defaults"
default_config = "defaults.yaml"
[[stages]]
name = "copy"
run = ["cp", "{config}", "@WORK@/got.yaml"]
"#;
    let dirs = crate::helpers::Dirs::new(&[("defaults", chain)]);
    std::fs::write(
        dirs.chains.join("defaults.yaml"),
        "# a comment\nparameters:\n  user_full_name: Paul Iusztin\n  links: [https://x/1]\n",
    )
    .unwrap();
    let settings = dirs.settings();
    let runner = crate::helpers::spawn_runner_in(dirs, settings).await;
    let id = runner.start("defaults", json!({})).await;
    assert_eq!(runner.wait_finished(&id).await["status"], "succeeded");
    let got: Value =
        serde_json::from_str(&std::fs::read_to_string(runner.dirs.work_file("got.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        got,
        json!({"parameters": {"user_full_name": "Paul Iusztin", "links": ["https://x/1"]}})
    );
    runner.stop().await;
}

#[tokio::test]
async fn a_stage_that_cannot_start_fails_with_a_reason() {
    let chain = r#"
name = "missing"
[[stages]]
name = "ghost"
run = ["definitely-not-a-program-here", "{config}"]
[[stages]]
name = "nowhere"
workdir = "does/not/exist"
run = ["true"]
"#;
    let runner = spawn_runner(&[("missing", chain)]).await;
    let id = runner.start("missing", json!({"config": {}})).await;
    let run = runner.wait_finished(&id).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let ghost = stage(&run, "ghost")["error"].as_str().unwrap().to_owned();
    assert!(
        ghost.starts_with("cannot start `definitely-not-a-program-here` in `")
            && ghost.contains("No such file"),
        "{ghost}"
    );
    let nowhere = stage(&run, "nowhere");
    assert_eq!(nowhere["status"], "failed");
    assert!(
        nowhere["error"]
            .as_str()
            .unwrap()
            .contains("does/not/exist` does not exist"),
        "{nowhere}"
    );
    runner.stop().await;
}

//! The README's "Verifying webhook signatures" against a real signed delivery: the documented
//! formula recomputed independently (hmac + sha2, not the crate's signer), the documented header
//! names, and the README's Python verifier itself run on the captured request (when `python3` is
//! on the machine).

use std::io::Write;
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use trigger_client::{Kind, RunRequest};

use crate::helpers::client;
use crate::kit::{Seen, fake_engine};

const SECRET: &str = "whsec-readme-5678";

fn readme() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    std::fs::read_to_string(path).expect("the workspace README")
}

/// The first ```python block after the "Verifying webhook signatures" heading.
fn readme_verifier() -> String {
    let readme = readme();
    let section = readme
        .split_once("### Verifying webhook signatures")
        .expect("the README documents the signature check")
        .1;
    let code = section
        .split_once("```python\n")
        .expect("with a Python verifier")
        .1;
    code.split_once("```")
        .expect("a closed code block")
        .0
        .to_owned()
}

/// One real signed delivery as a loopback receiver saw it.
async fn captured_delivery() -> Seen {
    let engine = fake_engine(())
        .route("/hook", post(|| async { StatusCode::NO_CONTENT }))
        .spawn()
        .await;
    let secret = crate::helpers::secret_file(&format!("{SECRET}\n"));
    let mut target = engine.target(Kind::Webhook, "hook");
    target.secret_file = Some(secret.path().to_owned());
    let mut req = RunRequest::new("digital_data_etl", "batch-readme");
    req.payload = Some(json!({"items": [{"title": "caf\u{e9} \"quoted\"", "url": "https://x/y"}]}));
    client(&target).trigger(&req).await.unwrap();
    engine.requests().pop().expect("one delivery")
}

#[tokio::test]
async fn the_documented_formula_matches_a_real_delivery() {
    let seen = captured_delivery().await;
    let readme = readme();
    for name in ["X-Watcher-Signature", "Idempotency-Key"] {
        assert!(
            readme.contains(&format!("`{name}: ")),
            "{name} undocumented"
        );
        assert!(seen.header(name).is_some(), "{name} not sent");
    }
    assert_eq!(seen.header("idempotency-key"), Some("batch-readme"));
    assert!(readme.contains("`<t> + \".\" + <raw body>`"));

    // `t=<unix seconds>,v1=<hex>`, HMAC-SHA256 over `<t>.<body>`, lowercase hex.
    let header = seen.header("x-watcher-signature").unwrap();
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .expect("t=<unix>,v1=<hex>");
    let now = chrono::Utc::now().timestamp();
    assert!((now - t.parse::<i64>().unwrap()).abs() < 60, "{t}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&seen.body);
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()));
}

#[tokio::test]
async fn the_readme_python_verifier_accepts_a_real_delivery_and_refuses_the_rest() {
    let verifier = readme_verifier();
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 not found: the README snippet is not run here");
        return;
    }
    let seen = captured_delivery().await;
    let header = seen.header("x-watcher-signature").unwrap().to_owned();
    let t: i64 = header[2..header.find(',').unwrap()].parse().unwrap();
    // The request travels as hex on stdin (no quoting issues); each line is one verdict.
    let script = format!(
        "{verifier}\nimport sys\nsecret, header, body = [bytes.fromhex(x) for x in sys.stdin.read().split()]\nheader = header.decode()\nt = int(header[2:header.index(',')])\n\
print(verify(secret, header, body))\n\
print(verify(secret, header, body))\n\
print(verify(secret, header, body + b' '))\n\
print(verify(b'wrong', header, body))\n\
print(verify(secret, header, body, now=t + 301))\n\
print(verify(secret, 'v1=00', body))\n"
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "{} {} {}",
        hex::encode(SECRET),
        hex::encode(&header),
        hex::encode(&seen.body)
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        verdicts,
        ["True", "False", "False", "False", "False", "False"],
        "accepted once; then: replay, changed body, wrong secret, outside the window, malformed (t={t})"
    );
}

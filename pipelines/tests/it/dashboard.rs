//! dashboard.rs: the runner's web page on a real runner: the login exchanges the token for an
//! HttpOnly, SameSite=Strict cookie (a wrong token and no cookie get the login form), the start
//! form's key makes two posts one run, a stage's log is served as plain text, cancel works, and
//! a POST without the page's header or from another origin is refused. The cookie opens the
//! page only, never the REST API.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

use crate::helpers::*;

const CHAINS: &[(&str, &str)] = &[
    (
        "quick",
        r#"
name = "quick"
[[stages]]
name = "say"
run = ["sh", "-c", "echo '<b>hello</b>' from the stage"]
"#,
    ),
    (
        "slow",
        r#"
name = "slow"
[[stages]]
name = "sleep"
run = ["sleep", "30"]
"#,
    ),
];

const HEADER: &str = pipelines::dashboard::page::HEADER;

struct Page {
    runner: TestRunner,
    http: reqwest::Client,
    cookie: String,
}

impl Page {
    fn url(&self, path: &str) -> String {
        self.runner.url(path)
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(self.url(path))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
        let r = self
            .http
            .post(self.url(path))
            .header(COOKIE, &self.cookie)
            .header(HEADER, "1")
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

async fn logged_in() -> Page {
    let dirs = Dirs::new(CHAINS);
    let settings = dirs.settings().with_dashboard();
    let runner = spawn_runner_in(dirs, settings).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let first = http.get(runner.url("/")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(
        first.text().await.unwrap().contains(r#"name="token""#),
        "the login form"
    );
    let wrong = http
        .post(runner.url("/dashboard/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    let ok = http
        .post(runner.url("/dashboard/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let set = ok.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "the cookie is not the token: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    Page {
        runner,
        http,
        cookie,
    }
}

#[tokio::test]
async fn the_page_needs_the_token_then_starts_shows_and_cancels_runs() {
    let page = logged_in().await;
    let (status, html) = page.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Start a chain") && html.contains(r#"<option value="quick">"#),
        "{html}"
    );
    let key = html
        .split(r#"name="key" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // A double click: two posts with the form's key, at once.
    let form = [
        ("chain", "quick"),
        ("config", "parameters: {n: 1}"),
        ("key", key.as_str()),
    ];
    let ((s1, a), (s2, b)) = tokio::join!(
        page.post("/dashboard/start", &form),
        page.post("/dashboard/start", &form)
    );
    assert!(s1.is_success() && s2.is_success(), "{a} {b}");
    assert_eq!(a["run"], b["run"], "one run");
    let id = a["run"].as_str().unwrap().to_owned();
    let (_, runs) = page.runner.get("/api/v1/runs").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    let run = page.runner.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["idempotency_key"], key.as_str());

    let (_, html) = page.get(&format!("/?run={id}")).await;
    assert!(html.contains(&format!("Run <code>{id}</code>")), "{html}");
    assert!(html.contains("1/1 stages done"), "{html}");
    let log = page
        .http
        .get(page.url(&format!("/dashboard/log?id={id}&stage=say")))
        .header(COOKIE, &page.cookie)
        .send()
        .await
        .unwrap();
    assert!(
        log.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(log.headers()["x-content-type-options"], "nosniff");
    assert!(
        log.text()
            .await
            .unwrap()
            .contains("<b>hello</b> from the stage")
    );

    // Cancel a slow run (no default_config: the pasted config is its config).
    let (status, slow) = page
        .post(
            "/dashboard/start",
            &[
                ("chain", "slow"),
                ("config", "{}"),
                ("key", "dashboard-slow-0123456789"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{slow}");
    let slow = slow["run"].as_str().unwrap().to_owned();
    page.runner
        .wait_run(&slow, |r| r["status"] == "running")
        .await;
    let (status, said) = page
        .post(&format!("/dashboard/cancel?id={slow}"), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert_eq!(
        page.runner.wait_finished(&slow).await["status"],
        "cancelled"
    );
    page.runner.stop().await;
}

#[tokio::test]
async fn forms_from_other_pages_and_the_cookie_on_the_api_are_refused() {
    let page = logged_in().await;
    let form = [
        ("chain", "quick"),
        ("config", "{}"),
        ("key", "dashboard-0123456789abcdef"),
    ];
    // No header: what a cross-origin form would send, even with the cookie.
    let r = page
        .http
        .post(page.url("/dashboard/start"))
        .header(COOKIE, &page.cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("X-Pipelines-Dashboard"));
    // Another origin's script.
    let r = page
        .http
        .post(page.url("/dashboard/start"))
        .header(COOKIE, &page.cookie)
        .header(HEADER, "1")
        .header("origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The cookie is not a token.
    let r = page
        .http
        .get(page.url("/api/v1/runs"))
        .header(COOKIE, &page.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Logged out, the live part is refused.
    let r = page
        .http
        .post(page.url("/dashboard/logout"))
        .header(COOKIE, &page.cookie)
        .header(HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, _) = page.get("/dashboard/live").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, runs) = page.runner.get("/api/v1/runs").await;
    assert!(
        runs["runs"].as_array().unwrap().is_empty(),
        "nothing started"
    );
    page.runner.stop().await;
}

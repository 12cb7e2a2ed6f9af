//! The web console in a real browser: headless Chromium, driven over the
//! W3C WebDriver protocol (Debian's `chromedriver`), against a real
//! `leanfarm serve --simulate` that requires tokens. Checks go in through
//! the console's form; the test sees their verdicts arrive, the messages
//! under the lines Lean named, the overview update on its own, a second
//! tenant see none of the first tenant's work, an operator see every
//! tenant's usage, and a prove job's rounds. Each view is photographed
//! into `docs/console/` (at laptop width, and the check at phone width).
//!
//! Skips, saying why, only when `chromium` or `chromedriver` is not
//! installed; `.ci/run` installs both, so CI never skips.

mod common;

use common::{leanfarm, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless Chromium session behind its own chromedriver.
struct Browser {
    driver: Child,
    client: reqwest::Client,
    session: String,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match client.get(format!("{base}/status")).send().await {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .is_ok_and(|status| status["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         format!("--window-size={width},{height}")],
            },
        }}});
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("create a session")
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            driver,
            client,
            session: format!("{base}/session/{session}"),
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self
            .client
            .request(method.clone(), format!("{}{path}", self.session));
        let request = match method {
            reqwest::Method::GET => request,
            _ => request.json(&body),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"]["error"].is_string() {
            panic!("webdriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Run `script` (a function body; `arguments` are `args`) in the page.
    async fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Wait until `script` returns something other than null or false.
    async fn until(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.run(script, args.clone()).await;
            if !value.is_null() && value != false {
                return value;
            }
            if Instant::now() > deadline {
                let page = self.run("return document.body.innerText", json!([])).await;
                panic!("timed out waiting for {what}; the page says:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Type into a field, as a user does (after clearing it).
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Press a key on whatever has the focus.
    async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.command(reqwest::Method::POST, "/actions", actions)
            .await;
    }

    async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// Photograph the whole page (up to 2,400 pixels tall), not only the
    /// window: the viewport is stretched to the page for the picture
    /// (Chromium's DevTools `Emulation.setDeviceMetricsOverride`).
    async fn screenshot_page(&self, path: &Path, width: u32) {
        let page = self
            .run("return document.documentElement.scrollHeight", json!([]))
            .await;
        let tall = page.as_u64().unwrap_or(800).clamp(400, 2400);
        let metrics = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
            "width": width, "height": tall, "deviceScaleFactor": 1, "mobile": false}});
        self.command(reqwest::Method::POST, "/goog/cdp/execute", metrics)
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.screenshot(path).await;
        let clear = json!({"cmd": "Emulation.clearDeviceMetricsOverride", "params": {}});
        self.command(reqwest::Method::POST, "/goog/cdp/execute", clear)
            .await;
    }

    async fn screenshot(&self, path: &Path) {
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", json!({}))
            .await;
        let png = decode_base64(encoded.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a png");
        std::fs::write(path, png).unwrap();
    }

    /// Sign in with a token through the header's form.
    async fn use_token(&self, token: &str) {
        self.type_into("#token-input", token).await;
        self.click("#token-form button[type=submit]").await;
        self.until(
            "the token to be taken",
            "return document.getElementById('token-state').textContent.includes('token set')",
            json!([]),
        )
        .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |byte: u8| -> u32 {
        match byte {
            b'A'..=b'Z' => (byte - b'A') as u32,
            b'a'..=b'z' => (byte - b'a' + 26) as u32,
            b'0'..=b'9' => (byte - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {other}"),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|byte| *byte != b'=' && !byte.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut word = 0u32;
        for (index, byte) in chunk.iter().enumerate() {
            word |= value(*byte) << (18 - 6 * index);
        }
        let produced = chunk.len() * 6 / 8;
        for index in 0..produced {
            out.push((word >> (16 - 8 * index)) as u8);
        }
    }
    out
}

/// Why this machine cannot run the browser tests, if it cannot.
fn missing_browser() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|path| !Path::new(path).exists())
        .map(|path| format!("{path} is not installed (apt-get install chromium chromium-driver)"))
}

/// Where the screenshots go: `LEAN_FARM_CONSOLE_SCREENSHOTS` (relative to
/// the workspace; `docs/console` refreshes those of docs/console.md), else
/// a temporary directory, so that a test run never changes the sources.
fn screenshots_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("LEAN_FARM_CONSOLE_SCREENSHOTS") {
        Some(dir) => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            (dir, None)
        }
        None => {
            let temporary = tempfile::tempdir().unwrap();
            (temporary.path().to_path_buf(), Some(temporary))
        }
    }
}

/// Make a key with `leanfarm tenant`; returns its token.
fn token(store: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["tenant", "--store", store])
        .args(args)
        .output()
        .expect("run leanfarm tenant");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A snippet whose second theorem has an error on line 4 and a `sorry`-free
/// first theorem: the messages must show under line 4.
const BROKEN: &str = "theorem one_eq_one : 1 = 1 := rfl\n\ntheorem broken (n : Nat) : n + 0 = n := by\n  -- sim: error unknown identifier 'frobnicate'\n  simp\n";

/// Submit the console's check form with `code` and the policy preset, and
/// wait for the verdict to show; returns the check's id and status.
async fn check_through_form(browser: &Browser, url: &str, code: &str) -> (String, String) {
    browser.goto(&format!("{url}/#/new")).await;
    browser
        .until(
            "the form",
            "return document.getElementById('snippet')",
            json!([]),
        )
        .await;
    browser
        .run("document.getElementById('snippet').value = ''", json!([]))
        .await;
    browser.type_into("#snippet", code).await;
    browser.click("#submit-check").await;
    let status = browser
        .until(
            "the verdict",
            "const s = document.getElementById('verdict-status'); \
             return s && !['queued', 'running'].includes(s.dataset.status) ? s.dataset.status : null",
            json!([]),
        )
        .await;
    let id = browser
        .run("return location.hash.split('/')[2]", json!([]))
        .await;
    (
        id.as_str().unwrap().to_string(),
        status.as_str().unwrap().to_string(),
    )
}

/// The WCAG contrast ratio of an element's text against the background it
/// sits on (the first opaque background up its ancestors); the worst of
/// every element `css` selects.
const WORST_CONTRAST: &str = r#"
const parse = (c) => { const m = c.match(/[\d.]+/g).map(Number); return m.length > 3 ? m : [...m, 1]; };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c[3] > 0.5) return c; } return [255, 255, 255, 1]; };
let worst = 99, where = null;
for (const el of document.querySelectorAll(arguments[0])) {
  if (!el.textContent.trim() || el.offsetParent === null) continue;
  const a = lum(parse(getComputedStyle(el).color)), b = lum(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < worst) { worst = ratio; where = el.outerHTML.slice(0, 80); }
}
return [worst, where];
"#;

#[tokio::test]
async fn the_console_checks_shows_verdicts_and_keeps_tenants_apart() {
    if let Some(reason) = missing_browser() {
        eprintln!("skipping the browser tests: {reason}");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    leanfarm(&[
        "tenant",
        "--store",
        &store,
        "set",
        "alpha",
        "--max-queued",
        "500",
        "--max-running",
        "4",
    ]);
    leanfarm(&["tenant", "--store", &store, "set", "beta"]);
    let alpha = token(&store, &["key", "alpha"]);
    let beta = token(&store, &["key", "beta"]);
    let operator = token(&store, &["farm-key", "--scope", "operator"]);
    let config = data.path().join("farm.toml");
    std::fs::write(
        &config,
        "[prove.routes.third-time-lucky]\nbackend = \"dummy\"\ndummy = { solve_on = 6 }\n",
    )
    .unwrap();
    let mut server = Server::start(
        data.path(),
        &["--require-auth", "--config", config.to_str().unwrap()],
    );
    server.token = Some(alpha.clone());
    let url = server.url.clone();
    let (shots, _temporary_shots) = screenshots_dir();
    let browser = Browser::start(1200, 860).await;

    // The console is served by the farm itself, with no token needed for
    // its files; the API behind it still wants one.
    browser.goto(&format!("{url}/")).await;
    browser
        .until(
            "the console",
            "return document.querySelector('nav a[data-nav=overview]')",
            json!([]),
        )
        .await;
    browser
        .until(
            "the refusal without a token",
            "return document.getElementById('status').textContent.includes('unauthorized')",
            json!([]),
        )
        .await;
    browser.use_token(&alpha).await;

    // A snippet with an error on line 4: the verdict arrives, and the
    // message sits under line 4 with its caret at the column Lean gave.
    let (broken_id, status) = check_through_form(&browser, &url, BROKEN).await;
    assert_eq!(status, "lean_error");
    let (_, check) = server.get_json(&format!("/v1/checks/{broken_id}")).await;
    let message = check["verdict"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["severity"] == "error")
        .unwrap_or_else(|| panic!("an error message: {check}"))
        .clone();
    assert_eq!(
        message["line"], 4,
        "lean-sim reports at the directive's line"
    );
    let placed = browser
        .until(
            "the message under its line",
            "const m = document.querySelector('.source .message.severity-error'); if (!m) return null; \
             let p = m.previousElementSibling; while (p && p.classList.contains('message')) p = p.previousElementSibling; \
             const caret = m.querySelector('.caret').textContent; \
             return [p.dataset.line, caret.indexOf('^'), m.querySelector('.message-text').textContent, p.textContent];",
            json!([]),
        )
        .await;
    assert_eq!(placed[0], "4", "the message follows line 4: {placed}");
    assert_eq!(
        placed[1], message["column"],
        "the caret is at Lean's column: {placed}"
    );
    assert!(
        placed[2]
            .as_str()
            .unwrap()
            .contains("unknown identifier 'frobnicate'"),
        "{placed}"
    );
    assert!(
        placed[3].as_str().unwrap().contains("-- sim: error"),
        "line 4 is the directive's line: {placed}"
    );
    // Highlighting: keywords, tactics and comments have their classes.
    let classes = browser
        .run(
            "return ['theorem', 'simp'].map(w => [...document.querySelectorAll('.source code span')].find(s => s.textContent === w)?.className)\
             .concat([document.querySelector('.source .tok-comment')?.textContent])",
            json!([]),
        )
        .await;
    assert_eq!(classes[0], "tok-keyword");
    assert_eq!(classes[1], "tok-tactic");
    assert!(classes[2].as_str().unwrap().starts_with("-- sim: error"));
    let reason = browser
        .run(
            "return document.getElementById('verdict-reason').textContent",
            json!([]),
        )
        .await;
    assert!(
        reason
            .as_str()
            .unwrap()
            .starts_with(check["verdict"]["reason"]["code"].as_str().unwrap()),
        "{reason}"
    );
    browser
        .until(
            "the attestation's status",
            "return document.getElementById('attestation-verified')?.textContent",
            json!([]),
        )
        .await;
    browser
        .screenshot_page(&shots.join("check.png"), 1200)
        .await;

    // A valid proof: status, axioms and a signature that verifies.
    let (valid_id, status) = check_through_form(
        &browser,
        &url,
        "theorem add_zero' (n : Nat) : n + 0 = n := by\n  simp\n",
    )
    .await;
    assert_eq!(status, "valid");
    let verified = browser
        .until(
            "the attestation's status",
            "return document.getElementById('attestation-verified')?.textContent",
            json!([]),
        )
        .await;
    assert_eq!(verified, "verifies");
    let axioms = browser
        .run(
            "return document.getElementById('axioms').textContent",
            json!([]),
        )
        .await;
    assert!(axioms.as_str().unwrap().contains("add_zero'"), "{axioms}");

    // A sorry, through the form as well.
    let (_, status) = check_through_form(
        &browser,
        &url,
        "theorem later (n : Nat) : n = n := by\n  sorry\n",
    )
    .await;
    assert_eq!(status, "sorry");

    // The overview counts alpha's three verdicts and updates by itself when
    // more arrive.
    browser.goto(&format!("{url}/#/overview")).await;
    browser
        .until(
            "three verdicts on the overview",
            "return document.getElementById('finished-total')?.textContent === '3'",
            json!([]),
        )
        .await;
    let charts = browser
        .run(
            "return document.querySelectorAll('svg.chart[role=img] title').length",
            json!([]),
        )
        .await;
    assert!(
        charts.as_u64().unwrap() >= 2,
        "a line and the stacked bars: {charts}"
    );
    let (status, _) = server
        .post(
            "/v1/checks",
            &json!({"snippets": [{"code": "theorem a : True := trivial"}, {"code": "theorem b : True := trivial"}], "wait": 30}),
        )
        .await;
    assert_eq!(status, 200);
    browser
        .until(
            "the overview to update by itself",
            "return document.getElementById('finished-total')?.textContent === '5'",
            json!([]),
        )
        .await;
    let bars = browser
        .run(
            "return document.querySelectorAll('rect.bar.series-valid').length",
            json!([]),
        )
        .await;
    assert!(
        bars.as_u64().unwrap() >= 1,
        "valid verdicts are drawn: {bars}"
    );
    browser.screenshot(&shots.join("overview.png")).await;

    // The batches: four of alpha's, each final, with a progress bar; the
    // `open` filter lists none.
    browser.goto(&format!("{url}/#/batches")).await;
    let rows = browser
        .until(
            "four batches",
            "const r = document.querySelectorAll('#batch-list tr[data-batch]'); return r.length === 4 ? r.length : null",
            json!([]),
        )
        .await;
    assert_eq!(rows, 4);
    let progress = browser
        .run("return [...document.querySelectorAll('#batch-list progress')].map(p => [p.value, p.max])", json!([]))
        .await;
    assert!(
        progress.as_array().unwrap().iter().all(|p| p[0] == p[1]),
        "{progress}"
    );
    browser.screenshot(&shots.join("batches.png")).await;
    browser.goto(&format!("{url}/#/batches?status=open")).await;
    browser
        .until(
            "no open batch",
            "return document.querySelector('#batch-list .empty')?.textContent === 'No batches.'",
            json!([]),
        )
        .await;

    // Keyboard: Tab from the skip link reaches the navigation, the token
    // field and its button; every field has a label.
    browser.goto(&format!("{url}/#/new")).await;
    browser
        .until(
            "the form",
            "return document.getElementById('snippet')",
            json!([]),
        )
        .await;
    browser
        .run("document.querySelector('.skip').focus()", json!([]))
        .await;
    browser.press("\u{E007}").await;
    let after_skip = browser
        .run(
            "return [location.hash, document.activeElement.id]",
            json!([]),
        )
        .await;
    assert_eq!(
        after_skip,
        json!(["#/new", "view"]),
        "Enter on the skip link focuses the view and keeps the route"
    );
    browser
        .run("document.querySelector('.skip').focus()", json!([]))
        .await;
    let mut reached = Vec::new();
    for _ in 0..12 {
        browser.press("\u{E004}").await;
        let focused = browser
            .run("const e = document.activeElement; return e.id || e.getAttribute('href') || e.tagName", json!([]))
            .await;
        reached.push(focused.as_str().unwrap_or("").to_string());
    }
    for wanted in [
        "#/overview",
        "#/batches",
        "#/new",
        "#/prove",
        "token-input",
        "snippet",
    ] {
        assert!(
            reached.iter().any(|id| id == wanted),
            "Tab reaches {wanted}: {reached:?}"
        );
    }
    let unlabelled = browser
        .run(
            "return [...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id)",
            json!([]),
        )
        .await;
    assert_eq!(unlabelled, json!([]), "every field has a label");
    browser.goto(&format!("{url}/#/check/{broken_id}")).await;
    browser
        .until(
            "the verdict",
            "return document.querySelector('.source .message')",
            json!([]),
        )
        .await;
    let contrast = browser
        .run(WORST_CONTRAST, json!(["body, nav a, .hint, .badge, th, td, .tick, .message-text, .source code span, label, button"]))
        .await;
    assert!(
        contrast[0].as_f64().unwrap() >= 4.5,
        "text contrast at least 4.5:1 (WCAG AA): {contrast}"
    );

    // A prove job started from the console: its rounds and candidates, the
    // budget it used and the final proof.
    browser.goto(&format!("{url}/#/prove")).await;
    browser
        .until(
            "the prove form",
            "return document.getElementById('route')",
            json!([]),
        )
        .await;
    browser.type_into("#route", "third-time-lucky").await;
    browser.click("#prove-form button[type=submit]").await;
    let state = browser
        .until(
            "the prove job to end",
            "const s = document.getElementById('prove-state'); return s && s.textContent !== 'running' ? s.textContent : null",
            json!([]),
        )
        .await;
    assert_eq!(state, "proved");
    let timeline = browser
        .until(
            "two rounds of candidates with their verdicts",
            "const r = document.querySelectorAll('#prove-timeline .round'); const c = document.querySelectorAll('#prove-timeline .candidate [data-status]'); \
             return r.length === 2 && c.length === 6 ? [...c].map(b => b.dataset.status) : null",
            json!([]),
        )
        .await;
    let statuses: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "valid").count(),
        1,
        "{statuses:?}"
    );
    let proof = browser
        .run(
            "return document.querySelector('#prove-proof .source')?.textContent",
            json!([]),
        )
        .await;
    assert!(
        proof
            .as_str()
            .unwrap()
            .contains("theorem t (a b : Nat) : a + b = b + a"),
        "{proof}"
    );
    let used = browser
        .run(
            "return document.querySelector('#prove-budget [role=meter][aria-label^=candidates]').getAttribute('aria-valuenow')",
            json!([]),
        )
        .await;
    assert_eq!(used, "6", "six candidates of the budget used");
    browser.screenshot(&shots.join("prove.png")).await;

    // The check form at phone width.
    browser.resize(390, 844).await;
    browser.goto(&format!("{url}/#/check/{broken_id}")).await;
    browser
        .until(
            "the verdict",
            "return document.querySelector('.source .message')",
            json!([]),
        )
        .await;
    let overflow = browser
        .run(
            "return document.documentElement.scrollWidth - window.innerWidth",
            json!([]),
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "nothing wider than a phone: {overflow}"
    );
    browser.screenshot(&shots.join("check-phone.png")).await;
    browser.goto(&format!("{url}/#/new")).await;
    browser
        .until(
            "the form",
            "return document.getElementById('snippet')",
            json!([]),
        )
        .await;
    browser.screenshot(&shots.join("form-phone.png")).await;
    browser.resize(1200, 860).await;

    // Another tenant sees none of it: no batch, no verdict counted, and
    // alpha's check is not found.
    browser.click("#token-forget").await;
    browser.use_token(&beta).await;
    browser.goto(&format!("{url}/#/batches")).await;
    browser
        .until(
            "beta's empty batch list",
            "return document.querySelector('#batch-list .empty')?.textContent === 'No batches.'",
            json!([]),
        )
        .await;
    browser.goto(&format!("{url}/#/overview")).await;
    browser
        .until(
            "beta's overview",
            "return document.getElementById('overview-scope')?.textContent.includes('Tenant beta')",
            json!([]),
        )
        .await;
    assert_eq!(
        browser
            .run(
                "return document.getElementById('finished-total').textContent",
                json!([])
            )
            .await,
        "0"
    );
    assert!(
        browser
            .run("return document.getElementById('workers')", json!([]))
            .await
            .is_null(),
        "no farm panels for a tenant under --require-auth"
    );
    browser.goto(&format!("{url}/#/check/{valid_id}")).await;
    browser
        .until(
            "alpha's check to be not found for beta",
            "return document.getElementById('status').textContent.includes('not_found')",
            json!([]),
        )
        .await;
    let leaked = browser
        .run(
            "return document.body.innerText.includes('add_zero')",
            json!([]),
        )
        .await;
    assert_eq!(leaked, false, "beta never sees alpha's source");

    // An operator sees the farm: queue, workers, pool and every tenant.
    browser.click("#token-forget").await;
    browser.use_token(&operator).await;
    browser.goto(&format!("{url}/#/overview")).await;
    let tenants = browser
        .until(
            "every tenant's usage",
            "const rows = [...document.querySelectorAll('#tenant-usage tbody tr td.mono')].map(t => t.textContent); return rows.length >= 2 ? rows : null",
            json!([]),
        )
        .await;
    assert_eq!(tenants, json!(["alpha", "beta"]));
    browser
        .until(
            "the workers table",
            "return document.querySelector('#workers tbody td.mono')",
            json!([]),
        )
        .await;
    browser
        .until(
            "every verdict counted",
            "return Number(document.getElementById('finished-total')?.textContent) >= 11",
            json!([]),
        )
        .await;
    browser
        .screenshot_page(&shots.join("overview-operator.png"), 1200)
        .await;
    drop(browser);
    server.kill_hard();
}

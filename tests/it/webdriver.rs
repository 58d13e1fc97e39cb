//! A small WebDriver client for the console's browser tests: Debian's
//! `chromedriver` started by the test on a free port, driving headless
//! Debian `chromium` (installed by scripts/test.sh).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::helpers::{TestClient, client, send};

/// The W3C name of an element reference in answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A chromedriver process and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    http: TestClient,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        Browser::start_with(width, height, &[]).await
    }

    /// The same, with more Chromium switches.
    pub async fn start_with(width: u32, height: u32, switches: &[&str]) -> Browser {
        let path = std::env::var("TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            std::path::Path::new(&path).exists(),
            "{path} is missing: run scripts/test.sh (it installs Debian's chromium and chromium-driver)"
        );
        let mut driver = Command::new(&path)
            .arg("--port=0")
            // Its own process group: dropping the browser ends chromedriver
            // and every Chromium process it started, even mid-test.
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut out = BufReader::new(driver.stdout.take().unwrap());
        let port = loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "chromedriver exited before saying its port");
            if let Some(rest) = line.trim().strip_prefix("ChromeDriver was started successfully on port ") {
                break rest.trim_end_matches('.').parse::<u16>().unwrap();
            }
        };
        // Keep reading its output, so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        let mut browser = Browser { driver, base: format!("http://127.0.0.1:{port}"), http: client() };
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-extensions".into(),
            "--disable-background-networking".into(),
            format!("--window-size={width},{height}"),
        ];
        args.extend(switches.iter().map(|s| s.to_string()));
        let chrome = json!({
            "binary": std::env::var("TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": args,
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = browser.call("POST", "/session", Some(caps)).await;
        let id = session["sessionId"].as_str().expect("a session id").to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A WebDriver command, its error as text (a page that re-renders
    /// makes an element just found stale).
    async fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
            .unwrap();
        let res = send(&self.http, req).await;
        let answer: Value = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
        if !res.status().is_success() {
            return Err(format!("webdriver {method} {path}: {} {answer}", res.status()));
        }
        Ok(answer["value"].clone())
    }

    /// Loads a URL and waits for it.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.call("GET", "/url", None).await.as_str().unwrap().to_string()
    }

    /// Runs a script in the page; `arguments` are `args`.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": args }))).await
    }

    /// The elements matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        let found = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css}))).await;
        found.as_array().unwrap().iter().map(|e| Element(e[ELEMENT].as_str().unwrap().to_string())).collect()
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            assert!(tokio::time::Instant::now() < deadline, "no `{css}` on {} within {WAIT:?}", self.url().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the text of the first `css` element satisfies `ok`; answers it.
    pub async fn text_when(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut last = None;
            if let Some(e) = self.all(css).await.into_iter().next() {
                // Replaced while read (the page re-rendered): read again.
                if let Ok(text) = self.try_call("GET", &format!("/element/{}/text", e.0), None).await {
                    let text = text.as_str().unwrap_or_default().to_string();
                    if ok(&text) {
                        return text;
                    }
                    last = Some(text);
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "`{css}` never had the text wanted (last: {last:?})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `count` elements match `css`.
    pub async fn wait_count(&self, css: &str, count: usize) -> Vec<Element> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self.all(css).await;
            if found.len() == count {
                return found;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} `{css}`, not {count}", found.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, e: &Element) -> String {
        self.call("GET", &format!("/element/{}/text", e.0), None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.call("GET", &format!("/element/{}/property/{name}", e.0), None).await.as_str().map(str::to_string)
    }

    pub async fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), Some(json!({}))).await;
    }

    /// Types into an element (WebDriver key codes, e.g. `\u{E007}` Enter).
    pub async fn type_in(&self, e: &Element, text: &str) {
        self.call("POST", &format!("/element/{}/value", e.0), Some(json!({ "text": text }))).await;
    }

    pub async fn clear(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/clear", e.0), Some(json!({}))).await;
    }

    /// The element that has the keyboard focus.
    pub async fn focused(&self) -> Element {
        let e = self.call("GET", "/element/active", None).await;
        Element(e[ELEMENT].as_str().unwrap().to_string())
    }

    /// Presses keys on whatever has the focus.
    pub async fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [json!({"type": "keyDown", "value": c.to_string()}), json!({"type": "keyUp", "value": c.to_string()})]
            })
            .collect();
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
        self.call("DELETE", "/actions", None).await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap()
    }

    /// The browser console's messages since the last call: (level, text).
    pub async fn console(&self) -> Vec<(String, String)> {
        let logs = self.call("POST", "/se/log", Some(json!({"type": "browser"}))).await;
        logs.as_array()
            .unwrap()
            .iter()
            .map(|l| (l["level"].as_str().unwrap_or("").to_string(), l["message"].as_str().unwrap_or("").to_string()))
            .collect()
    }

    /// Asserts the console holds no error (script errors, refused
    /// resources, CSP violations) other than those `expected` allows.
    pub async fn assert_no_console_errors(&self, expected: impl Fn(&str) -> bool) {
        let errors: Vec<_> =
            self.console().await.into_iter().filter(|(level, text)| level == "SEVERE" && !expected(text)).collect();
        assert!(errors.is_empty(), "console errors: {errors:?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.driver.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group,
            // the one chromedriver leads (process_group(0) above).
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.driver.wait();
    }
}

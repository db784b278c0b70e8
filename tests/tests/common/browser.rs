//! A real headless Chromium driven over WebDriver (W3C) through Debian's chromedriver, on a free
//! loopback port. The protocol is JSON over HTTP/1.1, spoken here with std only: a WebDriver
//! crate would bring an HTTP client whose features change the shared hyper build, and so the
//! binaries `bin()` builds, on every run.
//!
//! Without Chromium the browser tests print `SKIPPED: chromium not installed` and pass, unless
//! `ZIGGY_REQUIRE_BROWSER=1` (CI) makes that a failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; the browser and its driver end when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element found on the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium, or `None` (after saying SKIPPED) when they
    /// are not installed and the environment does not require them.
    pub fn start() -> Option<Browser> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            assert!(
                std::env::var("ZIGGY_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "ZIGGY_REQUIRE_BROWSER=1 but {} missing (apt-get install chromium chromium-driver)",
                missing.join(" and ")
            );
            println!(
                "SKIPPED: chromium not installed ({} missing)",
                missing.join(", ")
            );
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let ready = super::wait_until(Duration::from_secs(20), || {
            browser
                .request("GET", "/status", None)
                .is_ok_and(|v| v["value"]["ready"] == true)
        });
        assert!(ready, "chromedriver did not start within 20 s");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        )])
        .collect::<Vec<_>>();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let answer = browser
            .request("POST", "/session", Some(capabilities))
            .expect("a WebDriver session");
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Some(browser)
    }

    /// One WebDriver command: `Err` with the driver's message when it answers an error.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open: read the head, then Content-Length bytes.
        let mut raw = Vec::new();
        let mut buf = [0u8; 64 << 10];
        let head_end = loop {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let got = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if got == 0 {
                return Err("connection closed before the head".into());
            }
            raw.extend_from_slice(&buf[..got]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("no Content-Length")?;
        while raw.len() < head_end + length {
            let got = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if got == 0 {
                return Err("connection closed inside the body".into());
            }
            raw.extend_from_slice(&buf[..got]);
        }
        let value: Value =
            serde_json::from_slice(&raw[head_end..head_end + length]).map_err(|e| e.to_string())?;
        if value["value"]["error"].is_string() {
            return Err(format!(
                "{}: {}",
                value["value"]["error"], value["value"]["message"]
            ));
        }
        Ok(value)
    }

    fn command(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{what}", self.session);
        let mut answer = self
            .request(method, &path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {what}: {e}"));
        answer["value"].take()
    }

    /// Opens a page.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The element `css` selects, waiting for it at most 20 s.
    pub fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let path = format!("/session/{}/element", self.session);
            let found = self.request(
                "POST",
                &path,
                Some(json!({ "using": "css selector", "value": css })),
            );
            if let Ok(v) = found
                && let Some(id) = v["value"][ELEMENT].as_str()
            {
                return Element(id.to_owned());
            }
            assert!(Instant::now() < deadline, "no element {css} within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element `css` selects, scrolled to the middle of the window first (the
    /// table's sticky header would take a click at the top).
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.eval(
            "arguments[0].scrollIntoView({ block: 'center' });",
            json!([{ ELEMENT: e.0 }]),
        );
        self.command("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Replaces the text of the input `css` selects, typing it as a person would.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.command("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
        self.command(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    /// Waits at most 20 s for `script` (a function body) to return a truthy value; returns it.
    pub fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.eval(script, json!([]));
            if !(v.is_null() || v == false || v == 0 || v == "") {
                return v;
            }
            assert!(Instant::now() < deadline, "waited 20 s for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The text of the element `css` selects ("" when there is none).
    pub fn text(&self, css: &str) -> String {
        self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            json!([css]),
        )
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    /// Saves a screenshot as `DIR/NAME.png` when `ZIGGY_SCREENSHOTS=DIR` is set.
    pub fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("ZIGGY_SCREENSHOTS") else {
            return;
        };
        use base64::Engine;
        let png = self.command("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        println!("screenshot {}", path.display());
    }
}

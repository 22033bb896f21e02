//! A real browser for the tests that need one: headless Chromium, driven
//! through WebDriver (chromedriver on a loopback port of its own, so the
//! WebDriver client needs no TLS). Needs Debian's `chromium` and
//! `chromium-driver`; without them [`Driver::start`] skips the test with a
//! message (see `outside`), or fails it under `PORTERO_REQUIRE_BROWSER=1`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use super::{free_port, outside_program, Outside};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One Chromium at a time in a test binary: the machines that run these
/// have few cores. A [`Driver`] holds it while it lives.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// chromedriver on a port of its own, stopped (with every Chromium it
/// started) when dropped.
pub struct Driver {
    child: Child,
    port: u16,
    /// Chromium's user data directory, removed with the driver.
    profile: tempfile::TempDir,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Driver {
    /// chromedriver, listening, once no other driver of this test binary
    /// lives; `None` when the test is skipped for want of a browser.
    pub async fn start() -> Option<Driver> {
        let one = ONE_BROWSER.lock().await;
        let missing = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|program| !Path::new(program).exists())
            .collect::<Vec<_>>();
        let missing = (!missing.is_empty()).then(|| format!("no {}", missing.join(" nor ")));
        if !outside_program(Outside::Browser, missing) {
            return None;
        }
        let port = free_port();
        // A process group of its own, Chromium in it: a failed test that
        // never closed its session leaves no browser behind.
        let child = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Driver {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
            _one: one,
        })
    }

    /// A headless Chromium session: no sandbox (root), and none of the
    /// background traffic a closed network refuses. With `javascript`
    /// false, no page may run a script (WebDriver's own still run).
    pub async fn browser(&self, javascript: bool) -> Client {
        let profile = self.profile.path().display().to_string();
        let mut caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={profile}"),
                ]
            }
        });
        if !javascript {
            caps["goog:chromeOptions"]["prefs"] =
                json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver command fantoccini has no method for, under the session:
/// the WebAuthn virtual authenticators (W3C WebAuthn §11).
#[derive(Debug)]
pub struct SessionCall {
    pub method: http::Method,
    /// Under `/session/{id}/`.
    pub path: String,
    pub body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for SessionCall {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session");
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

/// A virtual authenticator in `browser`: a platform authenticator (CTAP2,
/// internal) that keeps discoverable credentials, verifies its user and
/// consents by itself. Its id.
pub async fn virtual_authenticator(browser: &Client) -> String {
    let added = browser
        .issue_cmd(SessionCall {
            method: http::Method::POST,
            path: "webauthn/authenticator".into(),
            body: Some(json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserConsenting": true,
                "isUserVerified": true,
            })),
        })
        .await
        .expect("a virtual authenticator");
    added.as_str().expect("its id").to_string()
}

//! The gateway as a process: started on port 0 with a config the harness
//! completes, signalled, restarted, and read through its log and admin API.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{poll, redis, ADMIN_TOKEN, HS_SECRET};

pub struct Gateway {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    /// Every public listener's port, and whether it speaks TLS.
    public_ports: Vec<(u16, bool)>,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    /// The `[server]`, `[[listen]]` and `[admin]` tables the harness wrote.
    preamble: String,
    /// `ulimit -n` for the process, if the test sets one.
    fd_limit: Option<u32>,
}

impl Gateway {
    /// Starts `portero` on `body`, a config without `[[listen]]` or `[admin]`
    /// tables (the harness adds them, on port 0), and waits until ready.
    pub async fn start(body: &str) -> Gateway {
        Self::start_with_admin_token(body, Some(ADMIN_TOKEN)).await
    }

    /// As [`Gateway::start`], with `PORTERO_ADMIN_TOKEN` set to `admin_token`, or unset.
    pub async fn start_with_admin_token(body: &str, admin_token: Option<&str>) -> Gateway {
        Self::launch("", body, admin_token, None).await
    }

    /// As [`Gateway::start`], with `server` lines added to the `[server]` table.
    pub async fn start_with_server_settings(server: &str, body: &str) -> Gateway {
        Self::launch(server, body, Some(ADMIN_TOKEN), None).await
    }

    /// As [`Gateway::start_with_server_settings`], the process limited to
    /// `fd_limit` open files (`ulimit -n`).
    pub async fn start_with_fd_limit(server: &str, body: &str, fd_limit: u32) -> Gateway {
        Self::launch(server, body, Some(ADMIN_TOKEN), Some(fd_limit)).await
    }

    async fn launch(
        server: &str,
        body: &str,
        admin_token: Option<&str>,
        fd_limit: Option<u32>,
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        // Quick shutdowns for tests, unless `server` sets its own.
        let defaults: String = [
            ("threads", "1"),
            ("grace_period", "\"0s\""),
            ("shutdown_timeout", "\"1s\""),
            // The demo issuers' OAuth 2.0 endpoints need one; tests that
            // follow the issuer identifier set the real one (`public_url`).
            ("public_url", "\"http://gateway.test\""),
        ]
        .iter()
        .filter(|(key, _)| !server.lines().any(|l| l.trim_start().starts_with(key)))
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
        // Port 0: the gateway binds what the kernel gives and logs it.
        let data = dir.path().join("data");
        let preamble = |port: u16, admin_port: u16| {
            format!(
                "[server]\n{defaults}data_dir = \"{data}\"\n{server}\n\n\
                 [[listen]]\naddr = \"127.0.0.1:{port}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n",
                data = data.display(),
            )
        };
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, format!("{}{body}", preamble(0, 0))).unwrap();
        let log = dir.path().join("portero.log");
        let child = spawn(&path, &log, admin_token, fd_limit);
        let mut gw = Gateway {
            child,
            port: 0,
            admin_port: 0,
            public_ports: Vec::new(),
            dir,
            log,
            preamble: String::new(),
            fd_limit,
        };
        gw.wait_bound(1 + body.matches("[[listen]]").count()).await;
        // A restart binds the same ports again.
        gw.preamble = preamble(gw.port, gw.admin_port);
        gw.rewrite_config(body);
        gw.wait_ready().await;
        gw
    }

    /// Reads the addresses the gateway logged: the admin listener's and the
    /// `listeners` public ones', in config order.
    async fn wait_bound(&mut self, listeners: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("portero exited with {status}:\n{}", self.log());
            }
            // JSON lines (`log_format = "json"`) read as the text ones.
            let log: String = self.log().lines().map(|l| as_text(l) + "\n").collect();
            let port_after = |line: &str| -> u16 {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                addr.rsplit(':').next().unwrap().parse().unwrap()
            };
            let public: Vec<(u16, bool)> = log
                .lines()
                .filter(|l| l.contains("public listener addr="))
                .map(|l| (port_after(l), l.contains("tls=true")))
                .collect();
            let admin = log.lines().find(|l| l.contains("admin listening addr="));
            if let (Some(admin), true) = (admin, public.len() >= listeners) {
                self.admin_port = port_after(admin);
                self.port = public[0].0;
                self.public_ports = public;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("portero did not log its listeners:\n{}", self.log());
    }

    /// The port of public listener `index`, in config order (0: the harness's).
    pub fn public_port(&self, index: usize) -> u16 {
        self.public_ports[index].0
    }

    /// The port of the first TLS listener the config's body added.
    pub fn tls_port(&self) -> u16 {
        let tls = self.public_ports.iter().find(|(_, tls)| *tls);
        tls.expect("a TLS listener").0
    }

    /// `kill -9`, then the same config, ports and data directory again.
    pub async fn kill9_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.respawn().await;
    }

    /// SIGTERM, a wait for the drain to end, then the same config again.
    pub async fn terminate_and_restart(&mut self) {
        self.stop().await;
        self.respawn().await;
    }

    /// SIGTERM and a wait for the drain to end; [`Gateway::respawn`] starts
    /// it again.
    pub async fn stop(&mut self) {
        self.signal("TERM");
        if self.wait_exit(Duration::from_secs(15)).await.is_none() {
            panic!("portero did not stop on SIGTERM:\n{}", self.log());
        }
    }

    /// Runs `portero ARGS` on this gateway's config (a command beside
    /// `run`, such as `import`): (success, stdout, stderr).
    pub fn command(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(super::portero_binary())
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("gateway.toml"))
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// The process id, for reading its memory use.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The same config, ports and data directory again.
    pub async fn respawn(&mut self) {
        self.child = spawn(
            &self.dir.path().join("gateway.toml"),
            &self.log,
            Some(ADMIN_TOKEN),
            self.fd_limit,
        );
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("portero exited with {status}:\n{}", self.log());
            }
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("portero did not become ready:\n{}", self.log());
    }

    /// Sends the gateway process a signal by name (`TERM`, `INT`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Replaces the config body on disk (same listeners), for reload tests.
    pub fn rewrite_config(&self, body: &str) {
        let path = self.dir.path().join("gateway.toml");
        std::fs::write(path, format!("{}{body}", self.preamble)).unwrap();
    }

    /// As [`Gateway::rewrite_config`], with `server` as the `[server]`
    /// table's own lines in place of those the gateway started with (the
    /// harness's defaults stay where `server` does not set them).
    pub fn rewrite_config_with_server(&self, server: &str, body: &str) {
        let (table, rest) = self
            .preamble
            .split_once("\n\n[[listen]]")
            .expect("the harness's preamble");
        let sets = |line: &str| {
            let key = line.split('=').next().unwrap_or_default().trim();
            server
                .lines()
                .any(|l| l.split('=').next().unwrap_or_default().trim() == key)
        };
        let mut lines = Vec::new();
        for line in table.lines() {
            if !sets(line) {
                lines.push(line);
            }
            if line.starts_with("data_dir = ") {
                break;
            }
        }
        let preamble = format!("{}\n{server}\n\n[[listen]]{rest}", lines.join("\n"));
        let path = self.dir.path().join("gateway.toml");
        std::fs::write(path, format!("{preamble}{body}")).unwrap();
    }

    /// Makes `http://127.0.0.1:<port>` the gateway's `server.public_url`
    /// (known only once it has bound its port), by reload, so that OAuth
    /// 2.0 issuer identifiers lead back to it; returns it.
    pub async fn public_url(&self, body: &str) -> String {
        let url = format!("http://127.0.0.1:{}", self.port);
        self.rewrite_config_with_server(&format!("public_url = \"{url}\""), body);
        self.reload().await;
        url
    }

    /// Reloads the config on disk; it must load.
    pub async fn reload(&self) {
        let r = reqwest::Client::new()
            .post(self.admin_url("/admin/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "reload: {}", r.text().await.unwrap());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one metric series, matched by name and every given label.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// The sum of every series of `name`, whatever their labels.
    pub async fn metric_sum(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits (up to 2 s) for a series to reach `want`: a series may be
    /// recorded just after the client has its response.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) -> f64 {
        poll(
            Duration::from_secs(2),
            || self.metric(name, labels),
            |v| *v == want,
        )
        .await
    }

    /// `GET /readyz`: its status code and the `status` it reports.
    pub async fn readiness(&self) -> (u16, String) {
        let r = reqwest::get(self.admin_url("/readyz")).await.unwrap();
        let code = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (code, v["status"].as_str().unwrap_or_default().to_string())
    }

    /// The Redis master(s) `/readyz` names (`store_master`), "" if none.
    pub async fn store_master(&self) -> String {
        let r = reqwest::get(self.admin_url("/readyz")).await.unwrap();
        let v: Value = r.json().await.unwrap();
        v["store_master"].as_str().unwrap_or_default().to_string()
    }

    /// Waits (up to 5 s) until `/readyz` reports `status`; returns what it last said.
    pub async fn wait_readiness(&self, status: &str) -> (u16, String) {
        poll(
            Duration::from_secs(5),
            || self.readiness(),
            |r| r.1 == status,
        )
        .await
    }

    /// The log so far, once it holds `needle` (lines are written by a
    /// background thread), or after 2 s.
    pub async fn log_with(&self, needle: &str) -> String {
        poll(
            Duration::from_secs(2),
            || async { self.log() },
            |log| log.contains(needle),
        )
        .await
    }

    /// `GET /admin/revocations`: the revocations the gateway holds.
    pub async fn revocations(&self) -> Vec<Value> {
        let list: Value = reqwest::Client::new()
            .get(self.admin_url("/admin/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["revocations"].as_array().unwrap().clone()
    }

    pub async fn revoke(&self, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.admin_url("/admin/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn spawn(config: &Path, log: &Path, admin_token: Option<&str>, fd_limit: Option<u32>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let binary = super::portero_binary();
    let mut cmd = match fd_limit {
        None => Command::new(binary),
        Some(n) => {
            // The shell sets the limit, then becomes portero.
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(binary);
            sh
        }
    };
    match admin_token {
        Some(t) => cmd.env("PORTERO_ADMIN_TOKEN", t),
        None => cmd.env_remove("PORTERO_ADMIN_TOKEN"),
    };
    cmd.arg("--config")
        .arg(config)
        .env("TEST_HS_SECRET", HS_SECRET)
        // The secret of the test provider's `portero-gateway` client (tests/oidc).
        .env(
            "TEST_INTROSPECTION_SECRET",
            "portero-introspects-0123456789",
        )
        .env("TEST_REDIS_PASSWORD", redis::PASSWORD)
        .env(
            "PORTERO_LOG",
            std::env::var("PORTERO_TEST_LOG").unwrap_or("info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the gateway on config text (with listeners on port 0) and
/// expects it to exit within 10 s: returns (success, stderr).
pub fn run_to_exit(body: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\ndata_dir = \"{}\"\npublic_url = \"http://gateway.test\"\n\n[[listen]]\naddr = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n{body}",
        dir.path().join("data").display(),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("portero.log");
    let mut child = spawn(&path, &log, Some(ADMIN_TOKEN), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portero kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), std::fs::read_to_string(log).unwrap())
}

/// Runs `portero check` on config text and returns (success, stderr).
pub fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(super::portero_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A JSON log line as its text twin: `message key=value ...` (strings
/// bare; timestamp, level and target left out); any other line as it is.
pub fn as_text(line: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(line) else {
        return line.to_string();
    };
    let mut text = fields
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    for (k, v) in &fields {
        if !["message", "timestamp", "level", "target"].contains(&k.as_str()) {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            text.push_str(&format!(" {k}={v}"));
        }
    }
    text
}

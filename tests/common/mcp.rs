//! An MCP server on the PyPI `mcp` package (tests/mcp_server.py) for the
//! tests that put one behind portero.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command};

use super::{outside_program, Outside};

const MCP_SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_server.py");

/// tests/mcp_server.py, killed when dropped; its log is one line per
/// request it was sent.
pub struct McpServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl McpServer {
    /// `None` (skip) without the `mcp` package.
    pub fn start() -> Option<McpServer> {
        let found = Command::new("python3")
            .args([
                "-c",
                "import uvicorn; from mcp.server.mcpserver import MCPServer",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        let missing = (!found).then(|| "the mcp package (2.x) is not installed".to_string());
        if !outside_program(Outside::McpServer, missing) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.log");
        let mut child = Command::new("python3")
            .args(["-u", MCP_SERVER])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        // Up to 30 s: importing the package is slow on a busy machine.
        for _ in 0..1200 {
            let mut reader = BufReader::new(std::fs::File::open(&log).unwrap());
            line.clear();
            if reader.read_line(&mut line).is_ok() && line.ends_with('\n') {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let stderr = std::fs::read_to_string(dir.path().join("stderr.log"));
                panic!(
                    "the MCP server exited: {status}\n{}",
                    stderr.unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let port = line.trim().parse().expect("the server prints its port");
        Some(McpServer {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    /// The requests it was sent: `METHOD PATH sub=<X-User-Sub>`.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap();
        log.lines().skip(1).map(str::to_string).collect()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

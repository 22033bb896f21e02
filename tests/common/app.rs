//! An upstream application in a child process (Flask, Express, PHP),
//! killed when dropped, that writes a line to a log file per request it
//! runs: the tests read what the application itself did.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct App {
    child: Child,
    pub port: u16,
    log: PathBuf,
    /// Lines of the log before the first request's (the port).
    skip: usize,
    _dir: tempfile::TempDir,
}

impl App {
    /// `command` prints its port on its first line of standard output,
    /// then a line per request.
    pub fn printing_its_port(mut command: Command) -> App {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ran.log");
        let child = command
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("the application starts");
        let mut app = App {
            child,
            port: 0,
            log,
            skip: 1,
            _dir: dir,
        };
        let line = app.wait_for(|app| {
            let log = std::fs::read_to_string(&app.log).unwrap();
            log.split_once('\n')
                .map(|(line, _)| line.trim().to_string())
        });
        app.port = line.parse().expect("the application prints its port");
        app
    }

    /// `command` listens on `port` and appends a line per request to the
    /// file the variable `log_variable` names.
    pub fn on_port(mut command: Command, port: u16, log_variable: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ran.log");
        std::fs::write(&log, "").unwrap();
        let child = command
            .env(log_variable, &log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the application starts");
        let mut app = App {
            child,
            port,
            log,
            skip: 0,
            _dir: dir,
        };
        app.wait_for(|app| std::net::TcpStream::connect(("127.0.0.1", app.port)).ok());
        app
    }

    fn wait_for<T>(&mut self, mut ready: impl FnMut(&App) -> Option<T>) -> T {
        for _ in 0..400 {
            if let Some(value) = ready(self) {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the application exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the application did not start");
    }

    /// The lines the application wrote for the requests it ran.
    pub fn ran(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap();
        log.lines().skip(self.skip).map(str::to_string).collect()
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

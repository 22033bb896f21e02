//! Users read where they already live: a real PostgreSQL and a real
//! MariaDB (on loopback; `PORTERO_TEST_POSTGRES_URL` / `PORTERO_TEST_MYSQL_URL`
//! point elsewhere), each test in a database of its own, dropped after.
//! Hashes come from the libraries that write them (tests/password_formats.py).

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use sqlx::{Connection, Executor};

const PASSWORD: &str = "Secr3t pässword+%";
/// The formats each database holds: three families, three libraries.
const FORMATS: [&str; 3] = ["bcrypt-2y", "django-pbkdf2-sha256", "argon2id"];

#[derive(Clone, Copy)]
enum Engine {
    Postgres,
    MariaDb,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::MariaDb => "MariaDB",
        }
    }

    /// What the test skips without.
    fn outside(self) -> Outside {
        match self {
            Engine::Postgres => Outside::Postgres,
            Engine::MariaDb => Outside::MariaDb,
        }
    }

    /// The server's URL without a database, and the one to connect to for admin.
    fn server(self) -> String {
        match self {
            Engine::Postgres => std::env::var("PORTERO_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432".into()),
            Engine::MariaDb => std::env::var("PORTERO_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
        }
    }

    fn admin_db(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mysql",
        }
    }

    fn placeholder(self) -> &'static str {
        match self {
            Engine::Postgres => "$1",
            Engine::MariaDb => "?",
        }
    }
}

/// A database of the test's own, dropped when it ends.
struct Database {
    engine: Engine,
    name: String,
    url: String,
}

impl Database {
    async fn create(engine: Engine) -> Option<Database> {
        sqlx::any::install_default_drivers();
        let admin = format!("{}/{}", engine.server(), engine.admin_db());
        let reachable = sqlx::AnyConnection::connect(&admin).await;
        let missing = reachable
            .as_ref()
            .err()
            .map(|e| format!("no {} at {}: {e}", engine.name(), engine.server()));
        if !outside_program(engine.outside(), missing) {
            return None;
        }
        let mut admin = reachable.unwrap();
        let name = format!(
            "portero_test_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let url = format!("{}/{name}", engine.server());
        Some(Database { engine, name, url })
    }

    /// The users table the tests read: login, hash, and the session
    /// dialect's other keys.
    async fn create_users(&self) {
        self.run(
            "CREATE TABLE users (username VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(255) NOT NULL, \
             id INTEGER NOT NULL, nombre VARCHAR(64), role VARCHAR(16), blocked BOOLEAN NOT NULL)",
        )
        .await;
    }

    async fn run(&self, sql: &str) {
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        conn.execute(sql).await.unwrap();
    }

    /// Every row's (username, hash).
    async fn hashes(&self) -> Vec<(String, String)> {
        let mut conn = sqlx::AnyConnection::connect(&self.url).await.unwrap();
        sqlx::query_as::<_, (String, String)>("SELECT username, password_hash FROM users")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }

    async fn add_user(&self, username: &str, hash: &str, id: usize) {
        self.run(&format!(
            "INSERT INTO users (username, password_hash, id, nombre, role, blocked) \
             VALUES ('{username}', '{hash}', {id}, 'Name of {username}', 'USER', false)"
        ))
        .await;
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (engine, name) = (self.engine, self.name.clone());
        // Dropped on a runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let admin = format!("{}/{}", engine.server(), engine.admin_db());
                if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                    let _ = c
                        .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                        .await;
                }
            })
        })
        .join();
    }
}

/// Two dialects reading the same table; the login-refresh one through a
/// query that renames columns, as an operator's would.
fn config(db: &Database, extra: &str) -> String {
    let p = db.engine.placeholder();
    format!(
        "[issuers.people]\ndialect = \"session\"\npath = \"/api/Session/GetToken\"\nmax_failures = 100\n\n\
         [issuers.people.user_store]\nurl = \"{url}\"\ncache_ttl = \"200ms\"\n{extra}\
         query = \"SELECT username, password_hash AS secret_hash, id, nombre, role, blocked FROM users WHERE username = {p}\"\n\n\
         [issuers.app]\ndialect = \"login-refresh\"\npath = \"/api/auth/token\"\nmax_failures = 100\n\n\
         [issuers.app.user_store]\nurl = \"{url}\"\ncache_ttl = \"200ms\"\n{extra}\
         query = \"SELECT username, password_hash AS secret_hash, role FROM users WHERE username = {p}\"\n\n\
         [upstreams.echo]\nbuiltin = \"echo\"\n\n[[routes]]\npath = \"/\"\nupstream = \"echo\"\n",
        url = db.url,
    )
}

/// `/readyz`, whole.
async fn readyz(gw: &Gateway) -> (u16, serde_json::Value) {
    let r = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const DIALECTS: [&str; 2] = ["/api/Session/GetToken", "/api/auth/token"];

async fn logins_where_users_live(engine: Engine) {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(engine).await else {
        return;
    };
    db.create_users().await;
    for (n, format) in FORMATS.iter().enumerate() {
        db.add_user(format, &hashes[*format], n + 1).await;
    }
    let p = |n: usize| match engine {
        Engine::Postgres => format!("${n}"),
        Engine::MariaDb => "?".to_string(),
    };
    let rehash = format!(
        "rehash = \"argon2id\"\n\
         update = \"UPDATE users SET password_hash = {} WHERE username = {} AND password_hash = {}\"\n\
         legacy_count = \"SELECT COUNT(*) FROM users WHERE password_hash NOT LIKE '$argon2id$%'\"\n",
        p(1),
        p(2),
        p(3)
    );
    let gw = Gateway::start(&config(&db, &rehash)).await;
    // Counted at start: bcrypt and Django's PBKDF2 are legacy; argon2-cffi's
    // argon2id has portero's parameters.
    gw.wait_metric("portero_legacy_hashes", &[("issuer", "people")], 2.0)
        .await;
    // Each format through each dialect; a wrong password refused.
    for format in FORMATS {
        for path in DIALECTS {
            let (status, body) = user_login(&gw, path, format, PASSWORD).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{format} at {path}: {body}\n{}",
                gw.log()
            );
            let (status, _) = user_login(&gw, path, format, "nope").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{format} at {path}");
        }
    }
    // Each legacy hash was rewritten as argon2id after its first login,
    // in the table itself; the users log in with it.
    let rehashed = poll(
        Duration::from_secs(10),
        || db.hashes(),
        |h| h.iter().all(|(_, hash)| hash.starts_with("$argon2id$")),
    )
    .await;
    assert!(
        rehashed.iter().all(|(_, h)| h.starts_with("$argon2id$")),
        "{rehashed:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for format in FORMATS {
        let (status, _) = user_login(&gw, DIALECTS[1], format, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{format} after its rehash");
    }
    gw.log_with("hash rewritten as argon2id").await;
    let (_, readiness) = readyz(&gw).await;
    assert_eq!(readiness["user_stores"]["app"], "reachable", "{readiness}");
    let (_, session) = user_login(&gw, DIALECTS[0], "argon2id", PASSWORD).await;
    let session = parse(&session);
    assert_eq!(session["usuario"]["nombre"], "Name of argon2id");
    let token = session["tokenValido"].as_str().unwrap().to_string();

    // A user added while portero runs logs in, once the cached absence ages.
    let (status, _) = user_login(&gw, DIALECTS[0], "newcomer", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    db.add_user("newcomer", &hashes["bcrypt-2b"], 9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = user_login(&gw, DIALECTS[0], "newcomer", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The table gone: logins answer 5xx in each dialect's shape (the session
    // dialect's error 3 is a 500, login-refresh's a 503), tokens
    // already issued still open their routes, and one WARN says why.
    db.run("DROP TABLE users").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (path, status_5xx) in DIALECTS.into_iter().zip([500, 503]) {
        for _ in 0..3 {
            let (status, body) = user_login(&gw, path, "bcrypt-2y", PASSWORD).await;
            assert_eq!(status, status_5xx, "{path}: {body}");
        }
    }
    let (_, session_error) = user_login(&gw, DIALECTS[0], "bcrypt-2y", PASSWORD).await;
    assert_eq!(parse(&session_error)["error"], 3, "{session_error}");
    assert_eq!(proxied(&gw, &format!("Bearer {token}")).await.status(), 200);
    // Degraded, still ready: the instance serves every route but logins.
    let (status, readiness) = readyz(&gw).await;
    assert_eq!(status, 200, "{readiness}");
    assert_eq!(readiness["status"], "degraded", "{readiness}");
    assert_eq!(readiness["user_stores"]["people"], "unreachable");
    gw.log_with("user store unavailable").await;
    assert_eq!(
        gw.log().matches("user store unavailable").count(),
        2,
        "one line per store's outage:\n{}",
        gw.log()
    );
}

#[tokio::test]
async fn postgres_users_log_in_in_every_format_and_an_outage_is_a_5xx() {
    logins_where_users_live(Engine::Postgres).await;
}

#[tokio::test]
async fn mariadb_users_log_in_in_every_format_and_an_outage_is_a_5xx() {
    logins_where_users_live(Engine::MariaDb).await;
}

#[tokio::test]
async fn a_query_without_the_dialects_columns_stops_the_start_naming_them() {
    let Some(db) = Database::create(Engine::Postgres).await else {
        return;
    };
    db.run("CREATE TABLE users (username TEXT, pw TEXT)").await;
    let body = format!(
        "[issuers.people]\ndialect = \"session\"\n\n[issuers.people.user_store]\nurl = \"{}\"\n\
         query = \"SELECT username, pw FROM users WHERE username = $1\"\n",
        db.url
    );
    let (ok, stderr) = run_to_exit(&body);
    assert!(!ok);
    assert!(
        stderr.contains("issuers.people.user_store.query") && stderr.contains("\"secret_hash\""),
        "{stderr}"
    );
    // A URL of another kind is refused naming its scheme, never the URL.
    let (ok, stderr) = run_to_exit(
        "[issuers.people]\ndialect = \"session\"\n\n[issuers.people.user_store]\n\
         url = \"redis://:hunter2@x\"\nquery = \"SELECT 1\"\n",
    );
    assert!(
        !ok && stderr.contains("\"redis\"") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_broken_mid_flood_costs_logins_only_and_comes_back() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(Engine::Postgres).await else {
        return;
    };
    db.create_users().await;
    db.add_user("flood", &hashes["passlib-pbkdf2-sha256"], 1)
        .await;
    let gw = Gateway::start(&config(&db, "")).await;
    let (_, session) = user_login(&gw, DIALECTS[0], "flood", PASSWORD).await;
    let token = parse(&session)["tokenValido"].as_str().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // What each login client has seen so far: a login before the table
    // went (OK_BEFORE), a refusal (REFUSED), a login after it (OK_AFTER).
    // The breakage waits on these, not on a clock: a login may take a
    // second on a busy machine, longer than a fixed outage.
    const OK_BEFORE: u8 = 1;
    const REFUSED: u8 = 2;
    const OK_AFTER: u8 = 4;
    let saw: std::sync::Arc<[std::sync::atomic::AtomicU8; 8]> = Default::default();
    let logins_saw = |what: u8| {
        (0..8)
            .step_by(2)
            .all(|n| saw[n].load(std::sync::atomic::Ordering::Relaxed) & what != 0)
    };
    // Four clients logging in and four using their token, until stopped:
    // every status each saw.
    let clients = (0..8).map(|n| {
        let (gw, token, stop, saw) = (&gw, token.clone(), stop.clone(), saw.clone());
        async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status = if n % 2 == 0 {
                    user_login(gw, DIALECTS[0], "flood", PASSWORD)
                        .await
                        .0
                        .as_u16()
                } else {
                    proxied(gw, &format!("Bearer {token}"))
                        .await
                        .status()
                        .as_u16()
                };
                let before = saw[n].load(std::sync::atomic::Ordering::Relaxed);
                let what = match status {
                    500 => REFUSED,
                    200 if before & REFUSED != 0 => OK_AFTER,
                    200 => OK_BEFORE,
                    _ => 0,
                };
                saw[n].fetch_or(what, std::sync::atomic::Ordering::Relaxed);
                seen.push(status);
            }
            (n % 2 == 0, seen)
        }
    });
    // Until every login client has seen `what`, within `secs`.
    let until = |what: u8, secs: u64, doing: &'static str| {
        let (logins_saw, saw) = (&logins_saw, &saw);
        async move {
            let seen = poll(
                Duration::from_secs(secs),
                || async { logins_saw(what) },
                |s| *s,
            );
            assert!(seen.await, "{doing}: {saw:?}");
        }
    };
    let breakage = async {
        until(OK_BEFORE, 30, "no login before the table went").await;
        db.run("ALTER TABLE users RENAME TO users_gone").await;
        until(REFUSED, 30, "a login client was never refused").await;
        db.run("ALTER TABLE users_gone RENAME TO users").await;
        // Back within a few logins' time: nothing is held broken.
        until(OK_AFTER, 10, "no login after the table came back").await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (seen, ()) = futures_util::join!(futures_util::future::join_all(clients), breakage);
    let logins: Vec<u16> = seen
        .iter()
        .filter(|s| s.0)
        .flat_map(|s| s.1.clone())
        .collect();
    let proxied: Vec<u16> = seen
        .iter()
        .filter(|s| !s.0)
        .flat_map(|s| s.1.clone())
        .collect();
    eprintln!(
        "logins: {} ok, {} refused (500); proxied: {} ok",
        logins.iter().filter(|s| **s == 200).count(),
        logins.iter().filter(|s| **s == 500).count(),
        proxied.iter().filter(|s| **s == 200).count()
    );
    // Not one token validation failed.
    assert!(
        !proxied.is_empty() && proxied.iter().all(|s| *s == 200),
        "{proxied:?}"
    );
    // Logins saw the session dialect's server error while the table was
    // gone, and succeeded before and after.
    assert!(logins.iter().all(|s| *s == 200 || *s == 500), "{logins:?}");
    // Each login client was refused while it was gone, and let in again
    // once it was back; and logins worked before it went.
    let login_clients: Vec<&Vec<u16>> = seen.iter().filter(|s| s.0).map(|s| &s.1).collect();
    for client in &login_clients {
        let last_refusal = client.iter().rposition(|s| *s == 500);
        let last_refusal = last_refusal.unwrap_or_else(|| panic!("never refused: {client:?}"));
        assert!(
            client[last_refusal..].contains(&200),
            "no login after the table came back: {client:?}"
        );
    }
    assert!(
        login_clients.iter().any(|c| {
            let first_refusal = c.iter().position(|s| *s == 500).unwrap_or(0);
            c[..first_refusal].contains(&200)
        }),
        "no login before the table went"
    );
    let (_, readiness) = readyz(&gw).await;
    assert_eq!(
        readiness["user_stores"]["people"], "reachable",
        "{readiness}"
    );
}

#[tokio::test]
async fn a_revocation_drops_cached_rows_at_once() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(Engine::Postgres).await else {
        return;
    };
    db.create_users().await;
    db.add_user("mallory", &hashes["passlib-pbkdf2-sha256"], 1)
        .await;
    let gw =
        Gateway::start(&config(&db, "").replace("cache_ttl = \"200ms\"", "cache_ttl = \"1h\""))
            .await;
    let (status, _) = user_login(&gw, DIALECTS[0], "mallory", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // Blocked in the table: the cached row still lets her in...
    db.run("UPDATE users SET blocked = true WHERE username = 'mallory'")
        .await;
    let (status, _) = user_login(&gw, DIALECTS[0], "mallory", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "within cache_ttl");
    // ...until she is revoked: the row is read again, and she is blocked.
    let r = gw
        .revoke(serde_json::json!({ "sub": "mallory", "issuer": "people" }))
        .await;
    assert_eq!(r.status(), 200);
    let (status, body) = user_login(&gw, DIALECTS[0], "mallory", PASSWORD).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(parse(&body)["error"], 2);
}

#[tokio::test]
async fn a_login_in_both_the_config_and_the_table_is_the_configs_and_logged() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(Engine::Postgres).await else {
        return;
    };
    db.create_users().await;
    db.add_user("twin", &hashes["argon2id"], 1).await;
    // The config's twin is blocked; the table's is not.
    let gw = Gateway::start(&format!(
        "{}\n[[issuers.people.principals]]\nusername = \"twin\"\nsecret_hash = '{}'\nblocked = true\n",
        config(&db, ""),
        hashes["argon2id"]
    ))
    .await;
    let warning = gw.log_with("both in the config and the user store").await;
    assert!(
        warning.contains("twin") && warning.contains("people"),
        "{warning}"
    );
    let (status, body) = user_login(&gw, DIALECTS[0], "twin", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the config's blocked twin: {body}"
    );
}

/// The table of `spellings_of_one_row_are_one_identity`: MariaDB's default
/// collation (case-, accent- and trailing-space-insensitive), or on
/// PostgreSQL an operator's `lower()` lookup, which matches case only.
async fn case_insensitive_table(db: &Database) -> &'static str {
    match db.engine {
        Engine::MariaDb => {
            db.run(
                "CREATE TABLE users (username VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(255) NOT NULL, \
                 id INTEGER NOT NULL, nombre VARCHAR(64), role VARCHAR(16), blocked BOOLEAN NOT NULL) \
                 CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
            )
            .await;
            "username = ?"
        }
        Engine::Postgres => {
            db.create_users().await;
            "lower(username) = lower($1)"
        }
    }
}

/// The session dialect on `db`'s users with `max_failures = 5`.
fn one_issuer(db: &Database, condition: &str) -> String {
    format!(
        "[issuers.people]\ndialect = \"session\"\npath = \"/api/Session/GetToken\"\nmax_failures = 5\n\n\
         [issuers.people.user_store]\nurl = \"{url}\"\ncache_ttl = \"1h\"\n\
         query = \"SELECT username, password_hash AS secret_hash, id, nombre, role, blocked FROM users WHERE {condition}\"\n\n\
         [upstreams.echo]\nbuiltin = \"echo\"\n\n[[routes]]\npath = \"/\"\nupstream = \"echo\"\n",
        url = db.url,
    )
}

/// Spellings a case-insensitive lookup matches to `admin`; MariaDB's
/// collation also ignores trailing spaces and accents.
fn spellings(engine: Engine) -> Vec<&'static str> {
    let mut all = vec![
        "Admin", "ADMIN", "aDmin", "adMin", "admIn", "admiN", "ADmin", "AdMiN",
    ];
    if let Engine::MariaDb = engine {
        all.extend(["admin ", "ADMIN  ", "ádmin", "Ádmin", "admín", "àdmin"]);
    }
    all
}

async fn spellings_of_one_row_are_one_identity(engine: Engine) {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(engine).await else {
        return;
    };
    let condition = case_insensitive_table(&db).await;
    db.add_user("admin", &hashes["bcrypt-2b"], 1).await;
    let gw = Gateway::start(&one_issuer(&db, condition)).await;
    let path = DIALECTS[0];

    // The right password under another spelling: the row's own login
    // is who logged in, in the answer and in the token.
    let (status, body) = user_login(&gw, path, "ADMIN", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = parse(&body);
    assert_eq!(session["usuario"]["username"], "admin", "{body}");
    let token = session["tokenValido"].as_str().unwrap().to_string();
    assert_eq!(claims_of(&token)["sub"], "admin");
    assert_eq!(claims_of(&token)["username"], "admin");
    // So revoking the row's login reaches it.
    let r = gw
        .revoke(serde_json::json!({ "sub": "admin", "issuer": "people" }))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(proxied(&gw, &format!("Bearer {token}")).await.status(), 401);

    // 30 wrong guesses, each spelling in turn: one budget of 5 checks.
    let variants = spellings(engine);
    let mut checked = 0;
    for n in 0..30 {
        let (status, body) = user_login(&gw, path, variants[n % variants.len()], "wrong").await;
        match status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::FORBIDDEN => assert_eq!(parse(&body)["error"], 2, "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    println!(
        "{}: {checked} password checks for 30 wrong guesses in {} spellings (max_failures 5)",
        engine.name(),
        variants.len()
    );
    assert!(checked <= 5, "{checked} checks against one row");
    // Locked: the right password, under any spelling, is refused too.
    for login in ["admin", "Admin", variants[variants.len() - 1]] {
        let (status, body) = user_login(&gw, path, login, PASSWORD).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{login:?}: {body}");
    }
}

#[tokio::test]
async fn mariadb_spellings_of_one_row_are_one_identity() {
    spellings_of_one_row_are_one_identity(Engine::MariaDb).await;
}

#[tokio::test]
async fn postgres_spellings_of_one_row_are_one_identity() {
    spellings_of_one_row_are_one_identity(Engine::Postgres).await;
}

#[tokio::test]
async fn a_control_character_in_a_login_never_reaches_the_database() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(Engine::Postgres).await else {
        return;
    };
    db.create_users().await;
    db.add_user("alice", &hashes["argon2id"], 1).await;
    let gw = Gateway::start(&config(&db, "")).await;
    for login in ["ali\u{0}ce", "alice\u{0}", "ali\nce", "\u{7f}alice"] {
        for path in DIALECTS {
            let (status, body) = user_login(&gw, path, login, PASSWORD).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{login:?} at {path}: {body}"
            );
        }
    }
    // No outage was reported: the store is as ready as before.
    let (status, readiness) = readyz(&gw).await;
    assert_eq!(status, 200, "{readiness}");
    assert_eq!(readiness["status"], "ready", "{readiness}");
    assert!(!gw.log().contains("user store unavailable"), "{}", gw.log());
    let (status, _) = user_login(&gw, DIALECTS[0], "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

/// Hashes naming costs no login should pay: each row fails its login at
/// once, with a WARN naming the format and never the hash.
#[tokio::test]
async fn a_row_whose_hash_costs_too_much_fails_without_being_computed() {
    let Some(db) = Database::create(Engine::MariaDb).await else {
        return;
    };
    db.create_users().await;
    let costly = [
        ("pbkdf2", "pbkdf2_sha256$4294967295$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g="),
        ("bcrypt", "$2b$31$abcdefghijklmnopqrstuu5Jm1uF0wGbTe4CHqzGr3xJQQbYhKOy6"),
        ("argon2", "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"),
        ("argon2", "$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"),
        ("scrypt", "$scrypt$ln=32,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"),
    ];
    for (n, (_, hash)) in costly.iter().enumerate() {
        db.add_user(&format!("costly{n}"), hash, n + 1).await;
    }
    let gw = Gateway::start(&config(&db, "")).await;
    let started = std::time::Instant::now();
    for (n, (format, hash)) in costly.iter().enumerate() {
        let (status, body) = user_login(&gw, DIALECTS[0], &format!("costly{n}"), PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{format}: {body}");
        let log = gw.log_with("over the limit").await;
        assert!(!log.contains(hash), "the hash reached the log:\n{log}");
    }
    // Each answered as an unknown login does: no hash of those costs ran.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let log = gw.log();
    for format in ["pbkdf2", "bcrypt", "argon2id", "scrypt"] {
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(format) && l.contains("over the limit")),
            "no WARN naming {format}:\n{log}"
        );
    }
    // The process is still serving logins.
    let (status, _) = user_login(&gw, DIALECTS[0], "nobody", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// An unknown name is checked against an imitation of the table's most
/// common format and cost: it takes what a known name with a wrong
/// password takes.
#[tokio::test]
async fn an_unknown_user_costs_what_a_known_one_costs() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(Engine::MariaDb).await else {
        return;
    };
    db.create_users().await;
    for n in 0..3 {
        db.add_user(&format!("user{n}"), &hashes["bcrypt-2b"], n)
            .await;
    }
    db.add_user("odd", &hashes["argon2id"], 9).await;
    let gw = Gateway::start(&config(&db, "").replace(
        "max_failures = 100",
        "max_failures = 100000\nip_max_failures = 100000",
    ))
    .await;
    for n in 0..3 {
        let (status, _) = user_login(&gw, DIALECTS[0], &format!("user{n}"), PASSWORD).await;
        assert_eq!(status, StatusCode::OK);
    }
    let timed = |login: &'static str| {
        let gw = &gw;
        async move {
            let started = std::time::Instant::now();
            let (status, _) = user_login(gw, DIALECTS[0], login, "wrong").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            started.elapsed()
        }
    };
    // The odd one's format, read from its row at its first login, costs
    // a refusal what it costs the common one's.
    let (mut known, mut odd, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..41 {
        known.push(timed("user1").await);
        odd.push(timed("odd").await);
        unknown.push(timed("nobody").await);
    }
    known.sort();
    odd.sort();
    unknown.sort();
    let (known, odd, unknown) = (known[20], odd[20], unknown[20]);
    println!(
        "MARIADB user store: bcrypt user {known:?}, argon2id user {odd:?}, unknown {unknown:?} (medians of 41)"
    );
    for known in [known, odd] {
        let (k, u) = (known.as_secs_f64(), unknown.as_secs_f64());
        assert!(
            (k - u).abs() <= 0.2 * k.max(u),
            "known {known:?}, unknown {unknown:?}"
        );
    }
}

/// A login the table's charset cannot hold (an emoji against latin1) makes
/// the database refuse the query: that names no one, and is no outage.
#[tokio::test]
async fn a_login_the_table_cannot_hold_names_no_one_and_is_no_outage() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(Engine::MariaDb).await else {
        return;
    };
    db.run(
        "CREATE TABLE users (username VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(255) NOT NULL, \
         id INTEGER NOT NULL, nombre VARCHAR(64), role VARCHAR(16), blocked BOOLEAN NOT NULL) \
         CHARACTER SET latin1",
    )
    .await;
    db.add_user("bob", &hashes["argon2id"], 1).await;
    let gw = Gateway::start(&config(&db, "")).await;
    for login in ["b\u{1F600}b", "b\u{100}b"] {
        let (status, body) = user_login(&gw, DIALECTS[0], login, PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{login:?}: {body}");
    }
    let (status, readiness) = readyz(&gw).await;
    assert_eq!(status, 200, "{readiness}");
    assert_eq!(readiness["status"], "ready", "{readiness}");
    assert!(!gw.log().contains("user store unavailable"), "{}", gw.log());
    let (status, _) = user_login(&gw, DIALECTS[0], "bob", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

/// The config's principal is who logs in under every spelling of its
/// login, never the table's row another spelling reaches.
#[tokio::test]
async fn another_spelling_of_a_config_login_is_still_the_configs() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(db) = Database::create(Engine::MariaDb).await else {
        return;
    };
    case_insensitive_table(&db).await;
    // The table's admin has a stale password and a role the config's has not.
    db.add_user("admin", &hashes["bcrypt-2b"], 1).await;
    let gw = Gateway::start(&format!(
        "{}\n[[issuers.people.principals]]\nusername = \"admin\"\nsecret_hash = '{}'\n",
        one_issuer(&db, "username = ?").replace("max_failures = 5", "max_failures = 100"),
        portero::credentials::hash_password("config password")
    ))
    .await;
    for login in ["admin", "ADMIN", "Admin ", "ádmin"] {
        let (status, body) = user_login(&gw, DIALECTS[0], login, PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{login:?}: {body}");
    }
    let (status, body) = user_login(&gw, DIALECTS[0], "ADMIN", "config password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = parse(&body)["tokenValido"].as_str().unwrap().to_string();
    assert_eq!(claims_of(&token)["sub"], "admin");
    assert!(
        claims_of(&token).get("role").is_none(),
        "{}",
        claims_of(&token)
    );
}

/// A flag read in any column type the databases use (PostgreSQL's
/// `integer` and `smallint`, text), or the row refused: a `blocked` that
/// cannot be read must not let its user in.
#[tokio::test]
async fn flags_of_any_type_hold_and_unreadable_rows_are_refused() {
    let Some(hash) = library_hashes(PASSWORD).map(|h| h[FORMATS[0]].clone()) else {
        return;
    };
    let Some(db) = Database::create(Engine::Postgres).await else {
        return;
    };
    db.run(
        "CREATE TABLE people (username TEXT PRIMARY KEY, password_hash TEXT, id INTEGER, \
         active INTEGER, blocked SMALLINT, note TEXT, claims TEXT, claimsj JSONB)",
    )
    .await;
    for (name, active, blocked, note, claims) in [
        ("ok", 1, 0, "'true'", "'{\"team\":\"core\"}'"),
        ("blocked", 1, 1, "'true'", "NULL"),
        ("inactive", 0, 0, "'true'", "NULL"),
        ("odd", 1, 0, "'maybe'", "NULL"),
    ] {
        db.run(&format!(
            "INSERT INTO people VALUES ('{name}', '{hash}', 1, {active}, {blocked}, {note}, {claims}, '{{}}')"
        ))
        .await;
    }
    let issuer = |name: &str, columns: &str| {
        format!(
            "[issuers.{name}]\ndialect = \"session\"\npath = \"/{name}\"\nmax_failures = 100\n\n\
             [issuers.{name}.user_store]\nurl = \"{url}\"\n\
             query = \"SELECT username, password_hash AS secret_hash, id, {columns} FROM people WHERE username = $1\"\n\n",
            url = db.url
        )
    };
    let body = format!(
        "{}{}[upstreams.echo]\nbuiltin = \"echo\"\n\n[[routes]]\npath = \"/\"\nupstream = \"echo\"\n",
        issuer("flags", "active, blocked"),
        issuer("texts", "note AS active"),
    );
    let gw = Gateway::start(&body).await;
    for (path, user, want) in [
        ("/flags", "ok", StatusCode::OK),
        // The session dialect's own answer to a blocked user.
        ("/flags", "blocked", StatusCode::FORBIDDEN),
        ("/flags", "inactive", StatusCode::UNAUTHORIZED),
        ("/texts", "ok", StatusCode::OK),
        ("/texts", "odd", StatusCode::UNAUTHORIZED),
    ] {
        let (status, answer) = user_login(&gw, path, user, PASSWORD).await;
        assert_eq!(status, want, "{user} at {path}: {answer}");
    }
}

use std::time::Duration;

use super::*;
use crate::api_keys::{Record, Write};
use crate::auth::revocation::Revocation;
use crate::clock::unix_now;
use crate::store::{
    ApiKeyRecords, BrowserSession, BrowserSessionRecords, CodeRecord, Lockout, RefreshRecord,
    RefreshTokens, RegisteredClient, RegisteredClients, Reservation, RevocationLog, Secrets,
    SessionOwner, SignOn, SsoSession, StoredSecret, MAX_LINEAGE,
};

#[tokio::test]
async fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = StoredSecret {
        kid: "k".into(),
        secret: vec![7; 32],
    };
    {
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        assert_eq!(s.secret_or_insert("i", key.clone()).await.unwrap(), key);
        let other = StoredSecret {
            kid: "other".into(),
            secret: vec![1; 32],
        };
        assert_eq!(
            s.secret_or_insert("i", other).await.unwrap(),
            key,
            "the first key stays"
        );
        s.add_revocations(&[
            Revocation::Jti {
                jti: "j".into(),
                expires_at: Some(100),
            },
            Revocation::Jti {
                jti: "old".into(),
                expires_at: Some(10),
            },
        ])
        .await
        .unwrap();
        s.purge_expired(50).await.unwrap();
        let rec = RefreshRecord {
            issuer: "i".into(),
            sub: "s".into(),
            login: "l".into(),
            issued_at: 1,
            expires_at: 2,
            tokens: vec![("a".into(), 2)],
            client_id: None,
            rotated_to: None,
            scope: None,
            resource: None,
            amr: Vec::new(),
            jkt: None,
            x5t: None,
        };
        s.put_refresh("h", &rec).await.unwrap();
    }
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    assert_eq!(
        s.secret_or_insert(
            "i",
            StoredSecret {
                kid: "x".into(),
                secret: vec![]
            }
        )
        .await
        .unwrap(),
        key
    );
    assert_eq!(
        s.revocations().await.unwrap(),
        vec![Revocation::Jti {
            jti: "j".into(),
            expires_at: Some(100)
        }]
    );
    assert_eq!(s.get_refresh("h").await.unwrap().unwrap().sub, "s");
    assert!(s.delete_refresh("h").await.unwrap().is_some());
    assert!(s.get_refresh("h").await.unwrap().is_none());
}

#[tokio::test]
async fn a_revoked_api_key_takes_no_later_write_even_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let live = Record::sample("ak_1", "partners", "11".repeat(32));
    let rotated = live.rotated("22".repeat(32), 100);
    {
        let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
        assert_eq!(
            s.write_api_keys(&[(Write::Put, live.clone())])
                .await
                .unwrap(),
            [true]
        );
        assert_eq!(
            s.write_api_keys(&[(Write::Revoke, live.tombstone())])
                .await
                .unwrap(),
            [true]
        );
    }
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    // A rotation that read the record before the revocation, an import
    // of it again, a second revocation: none is written.
    let late = [
        (Write::Rotate { from_version: 0 }, rotated),
        (Write::Put, live.clone()),
        (Write::Revoke, live.tombstone()),
    ];
    assert_eq!(
        s.write_api_keys(&late).await.unwrap(),
        [false, false, false]
    );
    let kept = s.api_keys().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].revoked && kept[0].consumer.is_empty());
}

#[tokio::test]
async fn failures_lock_then_expire() {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    let u = [("u", 3)];
    assert!(!s.record_failures(&u, 60, 1000).await.unwrap());
    assert!(!s.record_failures(&u, 60, 1000).await.unwrap());
    assert!(s.record_failures(&u, 60, 1000).await.unwrap());
    assert_eq!(
        s.reserve_attempt(&u, 60, 1059, "r").await.unwrap(),
        Reservation::Locked
    );
    // After the cool-down the count starts again.
    assert!(!s.record_failures(&u, 60, 1061).await.unwrap());
    assert_eq!(
        s.reserve_attempt(&u, 60, 1061, "r").await.unwrap(),
        Reservation::Granted(1)
    );
    s.release_attempts(&["u"], "r").await.unwrap();
    s.clear_failures("u").await.unwrap();
    assert_eq!(
        s.reserve_attempt(&u, 60, 1061, "r").await.unwrap(),
        Reservation::Granted(0)
    );
}

#[tokio::test]
async fn lapsed_failure_records_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    for i in 0..100 {
        let key = format!("k{i}");
        s.record_failures(&[(key.as_str(), 5)], 60, 1000)
            .await
            .unwrap();
    }
    s.record_failures(&[("late", 5)], 60, 2000).await.unwrap();
    let count = |s: &Embedded| {
        use redb::ReadableTableMetadata;
        let tx = s.db.db.begin_read().unwrap();
        tx.open_table(FAILURES).unwrap().len().unwrap()
    };
    assert_eq!(count(&s), 101);
    s.purge_expired(1059).await.unwrap();
    assert_eq!(count(&s), 101);
    s.purge_expired(1061).await.unwrap();
    assert_eq!(count(&s), 1);
}

#[tokio::test]
async fn a_lineage_is_bounded_and_ends_with_its_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    let record = RefreshRecord {
        issuer: "i".into(),
        sub: "s".into(),
        login: "l".into(),
        issued_at: 1000,
        expires_at: 5000,
        tokens: vec![("old".into(), 1500)],
        client_id: None,
        rotated_to: None,
        scope: None,
        resource: None,
        amr: Vec::new(),
        jkt: None,
        x5t: None,
    };
    s.put_refresh("h", &record).await.unwrap();
    let batch: Vec<(String, i64)> = (0..MAX_LINEAGE - 1)
        .map(|i| (format!("t{i}"), 3000))
        .collect();
    assert!(s.extend_refresh("h", &batch, 1000).await.unwrap());
    // Full: one more is refused while the old ones live...
    assert!(!s
        .extend_refresh("h", &[("x".into(), 3000)], 1000)
        .await
        .unwrap());
    // ...and makes room once one has expired (dropped on the way).
    assert!(s
        .extend_refresh("h", &[("x".into(), 3000)], 2000)
        .await
        .unwrap());
    let deleted = s.delete_refresh("h").await.unwrap().unwrap();
    assert_eq!(deleted.tokens.len(), MAX_LINEAGE);
    // Gone: nothing more can be added.
    assert!(!s
        .extend_refresh("h", &[("y".into(), 3000)], 2000)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_refresh_token_is_replaced_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    let seen = RefreshRecord {
        issuer: "i".into(),
        sub: "s".into(),
        login: "l".into(),
        issued_at: 1000,
        expires_at: 5000,
        tokens: vec![("a".into(), 3000)],
        client_id: Some("c".into()),
        rotated_to: None,
        scope: None,
        resource: None,
        amr: Vec::new(),
        jkt: None,
        x5t: None,
    };
    s.put_refresh("old", &seen).await.unwrap();
    assert!(s.replace_refresh("old", &seen, "new").await.unwrap());
    // Every later request read it as it was: too late.
    assert!(!s.replace_refresh("old", &seen, "other").await.unwrap());
    let marker = s.get_refresh("old").await.unwrap().unwrap();
    assert_eq!(marker.rotated_to.as_deref(), Some("new"));
    assert!(marker.tokens.is_empty(), "the lineage moved on");
    s.delete_refresh("old").await.unwrap();
    assert!(!s.replace_refresh("old", &seen, "other").await.unwrap());
}

#[tokio::test]
async fn revoking_a_token_revokes_what_was_derived_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    let cache = Arc::new(Revocations::default());
    s.follow(Feeds {
        revocations: cache.clone(),
        api_keys: Arc::new(crate::api_keys::Index::detached()),
    })
    .await;
    assert!(s.derive_token("a", &("b".into(), 3000)).await.unwrap());
    assert!(s.derive_token("b", &("c".into(), 2000)).await.unwrap());
    let revoked = |jti: &str| Revocation::Jti {
        jti: jti.into(),
        expires_at: Some(3000),
    };
    s.add_revocations(&[revoked("a")]).await.unwrap();
    let stored = s.revocations().await.unwrap();
    for jti in ["b", "c"] {
        assert!(cache.is_revoked("i", None, Some(jti), None), "{jti}");
        assert!(stored
            .iter()
            .any(|r| matches!(r, Revocation::Jti { jti: j, .. } if j == jti)));
    }
    // Nothing more is derived from a revoked token.
    assert!(!s.derive_token("a", &("d".into(), 3000)).await.unwrap());
}

#[tokio::test]
async fn a_burst_gets_no_more_checks_than_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    let limits = [("u", 5), ("ip", 50)];
    let reserve = || s.reserve_attempt(&limits, 60, 1000, "r");
    let mut granted = 0;
    for _ in 0..40 {
        match reserve().await.unwrap() {
            Reservation::Granted(_) => granted += 1,
            other => assert_eq!(other, Reservation::Busy),
        }
    }
    assert_eq!(granted, 5);
    // Two fail, three are released unchecked: two more may come.
    s.record_failures(&[("u", 5)], 60, 1000).await.unwrap();
    s.record_failures(&[("u", 5)], 60, 1000).await.unwrap();
    for _ in 0..5 {
        s.release_attempts(&["u", "ip"], "r").await.unwrap();
    }
    assert_eq!(reserve().await.unwrap(), Reservation::Granted(2));
    assert_eq!(reserve().await.unwrap(), Reservation::Granted(2));
    assert_eq!(reserve().await.unwrap(), Reservation::Granted(2));
    assert_eq!(reserve().await.unwrap(), Reservation::Busy);
    // Those three fail: locked, whatever is in flight.
    for _ in 0..3 {
        s.release_attempts(&["u", "ip"], "r").await.unwrap();
        s.record_failures(&[("u", 5)], 60, 1000).await.unwrap();
    }
    assert_eq!(
        s.reserve_attempt(&limits, 60, 1059, "r").await.unwrap(),
        Reservation::Locked
    );
    assert_eq!(
        s.reserve_attempt(&limits, 60, 1060, "r").await.unwrap(),
        Reservation::Granted(0)
    );
}

fn fresh() -> (tempfile::TempDir, Embedded) {
    let dir = tempfile::tempdir().unwrap();
    let s = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    (dir, s)
}

#[tokio::test]
async fn a_code_is_redeemed_once() {
    let (_dir, s) = fresh();
    crate::store::oauth::checks::a_code_is_redeemed_once(&s).await;
}

#[tokio::test]
async fn an_expired_code_is_not_held() {
    let (_dir, s) = fresh();
    crate::store::oauth::checks::an_expired_code_is_not_held(&s).await;
}

#[tokio::test]
async fn a_session_ends_and_takes_no_family_after() {
    let (_dir, s) = fresh();
    crate::store::oauth::checks::a_session_ends_and_takes_no_family_after(&s).await;
}

#[tokio::test]
async fn clients_are_listed_by_issuer_and_stay_deleted() {
    let (_dir, s) = fresh();
    crate::store::oauth::checks::clients_are_listed_by_issuer_and_stay_deleted(&s).await;
}

#[tokio::test]
async fn expired_issuer_records_are_purged() {
    let (_dir, s) = fresh();
    let now = unix_now();
    let count = |s: &Embedded| {
        use redb::ReadableTableMetadata;
        let tx = s.db.db.begin_read().unwrap();
        [CODES, SSO, CLIENTS].map(|t| tx.open_table(t).unwrap().len().unwrap())
    };
    for (name, exp) in [("old", now - 10), ("new", now + 600)] {
        s.put_code(name, &CodeRecord::sample("i", exp))
            .await
            .unwrap();
        s.put_sso(&SsoSession::sample(name, exp)).await.unwrap();
        s.put_client(&RegisteredClient::sample("i", name, exp))
            .await
            .unwrap();
    }
    assert_eq!(count(&s), [2, 2, 2]);
    s.purge_expired(now).await.unwrap();
    assert_eq!(count(&s), [1, 1, 1]);
    assert!(s.get_sso("new").await.unwrap().is_some());
    assert!(s.get_client("i", "new").await.unwrap().is_some());
    assert!(s.redeem_code("new").await.unwrap().is_some());
}

#[tokio::test]
async fn a_browser_session_is_kept_replaced_and_ended() {
    let (_dir, s) = fresh();
    crate::store::browser::checks::a_session_is_kept_replaced_and_ended(&s).await;
}

#[tokio::test]
async fn an_expired_browser_session_reads_as_absent() {
    let (_dir, s) = fresh();
    crate::store::browser::checks::an_expired_session_reads_as_absent(&s).await;
}

#[tokio::test]
async fn browser_sessions_are_found_by_owner_at_their_provider() {
    let (_dir, s) = fresh();
    crate::store::browser::checks::sessions_are_found_by_owner_at_their_provider(&s).await;
}

#[tokio::test]
async fn a_touch_extends_the_idle_end_and_not_a_gone_session() {
    let (_dir, s) = fresh();
    crate::store::browser::checks::a_touch_extends_the_idle_end_and_not_a_gone_session(&s).await;
}

#[tokio::test]
async fn a_claim_is_held_once_until_released_or_lapsed() {
    let (_dir, s) = fresh();
    crate::store::browser::checks::a_claim_is_held_once_until_released_or_lapsed(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_many_concurrent_claims_wins() {
    let (_dir, s) = fresh();
    crate::store::browser::checks::one_of_many_concurrent_claims_wins(Arc::new(s)).await;
}

#[tokio::test]
async fn ended_browser_sessions_and_lapsed_claims_are_purged() {
    let (_dir, s) = fresh();
    let now = unix_now();
    let count = |s: &Embedded| {
        use redb::ReadableTableMetadata;
        let tx = s.db.db.begin_read().unwrap();
        [
            tx.open_table(BROWSER).unwrap().len().unwrap(),
            tx.open_table(BROWSER_INDEX).unwrap().len().unwrap(),
            tx.open_table(CLAIMS).unwrap().len().unwrap(),
        ]
    };
    let session = |last_seen: i64| BrowserSession {
        last_seen,
        ..BrowserSession::sample("p", "user-1", Some("sid-1"), now)
    };
    // Ended by idleness, live for 10 s more, live for 10 s and touched.
    for (hash, last_seen) in [
        ("idle", now - 700),
        ("live", now - 590),
        ("touched", now - 590),
    ] {
        s.put_browser_session(hash, &session(last_seen))
            .await
            .unwrap();
    }
    assert!(s.touch_browser_session("touched", now).await.unwrap());
    assert!(s.claim("short", Duration::from_millis(1)).await.unwrap());
    assert!(s.claim("long", Duration::from_secs(600)).await.unwrap());
    assert_eq!(count(&s), [3, 6, 2]);
    s.purge_expired(now + 100).await.unwrap();
    assert_eq!(count(&s), [1, 2, 1]);
    let owner = SessionOwner::Subject("user-1".into());
    assert_eq!(
        s.browser_sessions_of("p", &owner).await.unwrap(),
        ["touched"]
    );
    assert!(!s.claim("long", Duration::from_secs(600)).await.unwrap());
    assert!(s.claim("short", Duration::from_secs(600)).await.unwrap());
}

#[tokio::test]
async fn consents_are_kept_per_user_and_client_and_forgotten() {
    let (_dir, s) = fresh();
    crate::store::consent::checks::consents_are_kept_per_user_and_client_and_forgotten(&s).await;
}

#[tokio::test]
async fn a_factors_record_is_written_only_over_the_version_read() {
    let (_dir, s) = fresh();
    crate::store::factors::checks::a_record_is_written_only_over_the_version_read(&s).await;
}

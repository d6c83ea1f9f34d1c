//! Users and enrollment tokens are listed without their secrets and can be revoked:
//! a revoked user's token is refused at once (401), a revoked enrollment token
//! enrolls no agent (a real `rampart-agent enroll` is refused), each revocation is
//! audited once with its actor, and nobody can revoke themselves.

use std::fs;
use std::path::Path;

use rampart_tests::cluster::{Agent, Collector};
use serde_json::{json, Value};

fn fixture_root(dir: &Path) {
    for (p, t) in [
        (
            "etc/os-release",
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        ),
        ("etc/hostname", "fixture\n"),
    ] {
        let h = dir.join(p);
        fs::create_dir_all(h.parent().unwrap()).unwrap();
        fs::write(h, t).unwrap();
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// The actors of the audit entries of `action` on `target`, oldest first, read with
/// the admin token `token`.
fn audited(c: &Collector, token: &str, action: &str, target: &str) -> Vec<String> {
    let path = format!("/api/v1/audit?action={action}&per_page=1000");
    let (code, log) = c.api("GET", &path, Some(token), None);
    assert_eq!(code, 200, "{log}");
    log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == target)
        .rev()
        .map(|e| e["actor"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn revoked_users_are_refused_at_once_and_nobody_revokes_themselves() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    let alice = c.user("alice", "admin");
    let bob = c.user("bob", "provisioner");

    // Listed by name with their roles, never with a token or its hash.
    let (code, users) = c.api("GET", "/api/v1/users", Some(&alice), None);
    assert_eq!(code, 200, "{users}");
    let users = users.as_array().unwrap();
    let names: Vec<_> = users.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "alice", "bob"]);
    for u in users {
        let mut k = keys(u);
        k.sort();
        assert_eq!(
            k,
            ["created_at_ms", "has_password", "name", "revoked", "role"],
            "{u}"
        );
    }
    assert!(!users.iter().any(|u| u.to_string().contains(&bob[4..])));
    assert_eq!(users[2]["role"], "provisioner");

    // Console passwords: set by an admin only, bounded, never shown.
    let pw = |who: &str, p: &str| {
        c.api(
            "PUT",
            "/api/v1/users/bob/password",
            Some(who),
            Some(json!({ "password": p })),
        )
    };
    assert_eq!(pw(&bob, "bob's own long password").0, 403, "not by bob");
    let (code, v) = pw(&alice, "short");
    assert!(
        code == 422 && v["error"].as_str().unwrap().contains("12 to 1024"),
        "{v}"
    );
    assert_eq!(pw(&alice, &"p".repeat(1025)).0, 422);
    assert_eq!(pw(&alice, "bob's long password").0, 204);
    let (_, users) = c.api("GET", "/api/v1/users", Some(&alice), None);
    assert_eq!(users[2]["has_password"], json!(true), "{users}");
    assert_eq!(users[1]["has_password"], json!(false), "{users}");
    assert!(!users.to_string().contains("argon2"), "{users}");
    let (_, log) = c.api("GET", "/api/v1/audit?per_page=5", Some(&alice), None);
    assert!(log.to_string().contains("user.password"), "{log}");
    assert!(!log.to_string().contains("bob's long password"), "{log}");

    // bob works; once revoked his very next request is refused.
    assert_eq!(c.api("GET", "/api/v1/scans", Some(&bob), None).0, 200);
    let (code, v) = c.api("DELETE", "/api/v1/users/bob", Some(&c.admin), None);
    assert_eq!((code, &v["revoked"]), (200, &json!(true)), "{v}");
    let (code, v) = c.api("GET", "/api/v1/scans", Some(&bob), None);
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].is_string(), "{v}");
    // Idempotent: revoking again answers the same and records nothing new.
    let (code, v) = c.api("DELETE", "/api/v1/users/bob", Some(&alice), None);
    assert_eq!((code, &v["revoked"]), (200, &json!(true)), "{v}");
    assert_eq!(audited(&c, &alice, "user.revoke", "bob"), ["admin"]);
    // The name stays taken: the audit log's actors keep meaning one identity.
    let (code, v) = c.api(
        "POST",
        "/api/v1/users",
        Some(&c.admin),
        Some(json!({"name": "bob", "role": "viewer"})),
    );
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("revoked"), "{v}");
    let (code, v) = c.api("DELETE", "/api/v1/users/nobody", Some(&c.admin), None);
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nobody"), "{v}");

    // Nobody revokes themselves, so an admin always remains.
    let (code, v) = c.api("DELETE", "/api/v1/users/admin", Some(&c.admin), None);
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("another admin"),
        "{v}"
    );
    assert_eq!(c.api("GET", "/api/v1/users", Some(&c.admin), None).0, 200);
    // Another admin may.
    let (code, v) = c.api("DELETE", "/api/v1/users/admin", Some(&alice), None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(c.api("GET", "/api/v1/users", Some(&c.admin), None).0, 401);
    assert_eq!(audited(&c, &alice, "user.revoke", "admin"), ["alice"]);
    let (code, _) = c.api("DELETE", "/api/v1/users/alice", Some(&alice), None);
    assert_eq!(code, 409, "the last admin stays");
}

#[test]
fn a_revoked_enrollment_token_enrolls_no_agent() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root);
    let c = Collector::start(&t.path().join("collector"), None, None);
    let carol = c.user("carol", "provisioner");
    let (code, created) = c.api(
        "POST",
        "/api/v1/enrollment-tokens",
        Some(&carol),
        Some(json!({"project": "web", "max_uses": 2, "ttl_seconds": 3600})),
    );
    assert_eq!(code, 200, "{created}");
    let (id, secret) = (
        created["id"].as_str().unwrap().to_string(),
        created["token"].as_str().unwrap().to_string(),
    );

    // One agent enrolls; the listing counts the use and never shows the secret.
    let first = Agent::new(&t.path().join("a1"));
    let (ok, out) = first.enroll(&c.url(), &secret, &c.fingerprint, &root, &[]);
    assert!(ok, "first enrollment: {out}");
    let (code, list) = c.api("GET", "/api/v1/enrollment-tokens", Some(&carol), None);
    assert_eq!(code, 200, "{list}");
    assert!(!list.to_string().contains(&secret[4..]), "{list}");
    let tok = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap()
        .clone();
    let mut k = keys(&tok);
    k.sort();
    assert_eq!(
        k,
        [
            "created_at_ms",
            "created_by",
            "expired",
            "expires_at_ms",
            "id",
            "max_uses",
            "project",
            "revoked",
            "uses"
        ],
        "{tok}"
    );
    assert_eq!(
        (
            &tok["uses"],
            &tok["max_uses"],
            &tok["revoked"],
            &tok["project"]
        ),
        (&json!(1), &json!(2), &json!(false), &json!("web")),
        "{tok}"
    );

    // Revoked (by an admin; a provisioner may not), the token's last use is refused.
    let path = format!("/api/v1/enrollment-tokens/{id}");
    assert_eq!(c.api("DELETE", &path, Some(&carol), None).0, 403);
    let (code, v) = c.api("DELETE", &path, Some(&c.admin), None);
    assert_eq!(
        (code, &v["revoked"], &v["uses"]),
        (200, &json!(true), &json!(1)),
        "{v}"
    );
    let second = Agent::new(&t.path().join("a2"));
    let (ok, out) = second.enroll(&c.url(), &secret, &c.fingerprint, &root, &[]);
    assert!(!ok, "a revoked token enrolled an agent: {out}");
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(c.agents().as_array().unwrap().len(), 1);
    let refused = c.admin("GET", "/api/v1/audit?action=enrollment.refused", None);
    assert!(
        refused["entries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("enrollment token was revoked"),
        "{refused}"
    );

    // Idempotent, audited once with its actor; unknown IDs are 404.
    let (code, v) = c.api("DELETE", &path, Some(&c.admin), None);
    assert_eq!((code, &v["revoked"]), (200, &json!(true)), "{v}");
    assert_eq!(audited(&c, &c.admin, "token.revoke", &id), ["admin"]);
    let (code, v) = c.api(
        "DELETE",
        "/api/v1/enrollment-tokens/tok-none",
        Some(&c.admin),
        None,
    );
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("tok-none"), "{v}");
}

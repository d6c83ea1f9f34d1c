//! Every endpoint × every role (SPEC §4): no token 401, a role below the endpoint's
//! 403, a role at or above it is let through. Requests name things that do not exist
//! (or repeat current settings), so an authorised call answers 404 or 2xx without
//! changing anything — and an unauthorised one must be refused before any lookup.

use rampart_tests::cluster::Collector;
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Role {
    Viewer,
    User,
    Provisioner,
    Admin,
}

#[test]
fn every_endpoint_checks_every_role() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    let settings = c.admin("GET", "/api/v1/settings", None);
    let tokens: Vec<(Role, String)> = [
        ("v", Role::Viewer, "viewer"),
        ("u", Role::User, "user"),
        ("p", Role::Provisioner, "provisioner"),
    ]
    .iter()
    .map(|(n, r, name)| (*r, c.user(n, name)))
    .chain(std::iter::once((Role::Admin, c.admin.clone())))
    .collect();
    let table: Vec<(&str, &str, Option<Value>, Role)> = vec![
        ("GET", "/api/v1/scans", None, Role::Provisioner),
        (
            "POST",
            "/api/v1/scans",
            Some(json!({"agent_id": "ag-none"})),
            Role::Provisioner,
        ),
        ("GET", "/api/v1/scans/sc-none", None, Role::Provisioner),
        (
            "GET",
            "/api/v1/scans/sc-none/report.html",
            None,
            Role::Provisioner,
        ),
        (
            "GET",
            "/api/v1/scans/sc-none/report.json",
            None,
            Role::Provisioner,
        ),
        ("GET", "/api/v1/overview", None, Role::Provisioner),
        ("GET", "/api/v1/handover/ag-none", None, Role::Provisioner),
        (
            "POST",
            "/api/v1/enrollment-tokens",
            Some(json!({"project": "x"})),
            Role::Provisioner,
        ),
        ("GET", "/api/v1/ca", None, Role::Provisioner),
        ("POST", "/api/v1/scans/sc-none/release", None, Role::Admin),
        ("POST", "/api/v1/scans/sc-none/cancel", None, Role::Admin),
        ("GET", "/api/v1/settings", None, Role::Admin),
        (
            "PUT",
            "/api/v1/settings",
            Some(settings.clone()),
            Role::Admin,
        ),
        ("GET", "/api/v1/agents", None, Role::Admin),
        ("POST", "/api/v1/agents/ag-none/revoke", None, Role::Admin),
        ("GET", "/api/v1/audit", None, Role::Admin),
        ("GET", "/api/v1/webhook/deliveries", None, Role::Admin),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, need) in &table {
        let (code, _) = c.api(method, path, None, body.clone());
        if code != 401 {
            wrong.push(format!("{method} {path} without a token: {code}, want 401"));
        }
        for (role, token) in &tokens {
            let (code, v) = c.api(method, path, Some(token), body.clone());
            let ok = if role < need {
                code == 403
            } else {
                (200..300).contains(&code) || code == 404
            };
            if !ok {
                wrong.push(format!("{method} {path} as {role:?}: {code} {v}"));
            }
        }
    }
    // A user added by an admin gets exactly that role: the matrix above depends on it.
    let (code, _) = c.api(
        "POST",
        "/api/v1/users",
        Some(&tokens[2].1),
        Some(json!({"name": "x", "role": "admin"})),
    );
    if code != 403 {
        wrong.push(format!("a provisioner creating an admin: {code}, want 403"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing changed: settings are what they were.
    assert_eq!(c.admin("GET", "/api/v1/settings", None), settings);
}

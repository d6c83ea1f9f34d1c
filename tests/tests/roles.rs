//! Every endpoint × every role (SPEC §4): no token 401, a role below the endpoint's
//! 403, a role at or above it is let through. Requests name things that do not exist
//! (or repeat current settings, or a taken user name), so an authorised call answers
//! without changing anything but a new enrollment token — and an unauthorised one
//! must be refused before any lookup. Every operation of the OpenAPI document is in
//! the table.

use rampart_tests::cluster::{http_raw, Collector};
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
    // (method, path as documented, body, role needed, answer of an authorised call).
    // `{id}` and `{name}` name nothing that exists.
    let table: Vec<(&str, &str, Option<Value>, Role, u16)> = vec![
        ("GET", "/api/v1/scans", None, Role::Provisioner, 200),
        (
            "POST",
            "/api/v1/scans",
            Some(json!({"agent_id": "ag-none"})),
            Role::Provisioner,
            404,
        ),
        ("GET", "/api/v1/scans/{id}", None, Role::Provisioner, 404),
        (
            "GET",
            "/api/v1/scans/{id}/report.html",
            None,
            Role::Provisioner,
            404,
        ),
        (
            "GET",
            "/api/v1/scans/{id}/report.json",
            None,
            Role::Provisioner,
            404,
        ),
        (
            "GET",
            "/api/v1/scans/{id}/report.arf.xml",
            None,
            Role::Provisioner,
            404,
        ),
        ("GET", "/api/v1/overview", None, Role::Provisioner, 200),
        ("GET", "/api/v1/handover/{id}", None, Role::Provisioner, 404),
        (
            "POST",
            "/api/v1/enrollment-tokens",
            Some(json!({"project": "x"})),
            Role::Provisioner,
            200,
        ),
        (
            "GET",
            "/api/v1/enrollment-tokens",
            None,
            Role::Provisioner,
            200,
        ),
        (
            "DELETE",
            "/api/v1/enrollment-tokens/{id}",
            None,
            Role::Admin,
            404,
        ),
        ("GET", "/api/v1/ca", None, Role::Provisioner, 200),
        ("GET", "/api/v1/ssh", None, Role::Provisioner, 200),
        (
            "POST",
            "/api/v1/targets",
            Some(json!({"host": ""})),
            Role::Provisioner,
            422,
        ),
        ("GET", "/api/v1/targets", None, Role::Provisioner, 200),
        ("GET", "/api/v1/targets/{id}", None, Role::Provisioner, 404),
        (
            "PUT",
            "/api/v1/targets/{id}",
            Some(json!({"host": "h.example"})),
            Role::Provisioner,
            404,
        ),
        (
            "DELETE",
            "/api/v1/targets/{id}",
            None,
            Role::Provisioner,
            404,
        ),
        ("POST", "/api/v1/scans/{id}/release", None, Role::Admin, 404),
        ("POST", "/api/v1/scans/{id}/cancel", None, Role::Admin, 404),
        ("GET", "/api/v1/settings", None, Role::Admin, 200),
        (
            "PUT",
            "/api/v1/settings",
            Some(settings.clone()),
            Role::Admin,
            200,
        ),
        ("GET", "/api/v1/agents", None, Role::Admin, 200),
        ("POST", "/api/v1/agents/{id}/revoke", None, Role::Admin, 404),
        ("GET", "/api/v1/users", None, Role::Admin, 200),
        (
            "POST",
            "/api/v1/users",
            Some(json!({"name": "admin", "role": "viewer"})),
            Role::Admin,
            409,
        ),
        ("DELETE", "/api/v1/users/{name}", None, Role::Admin, 404),
        (
            "PUT",
            "/api/v1/users/{name}/password",
            Some(json!({"password": "a long enough password"})),
            Role::Admin,
            404,
        ),
        ("GET", "/api/v1/audit", None, Role::Admin, 200),
        ("GET", "/api/v1/webhook/deliveries", None, Role::Admin, 200),
        ("GET", "/api/v1/admin/backup", None, Role::Admin, 200),
    ];
    // Documentation, health, metrics and downloads need no token at all.
    let open: Vec<(&str, &str, u16)> = vec![
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/download/{name}", 404),
        ("GET", "/api/v1/openapi.json", 200),
        ("GET", "/api/v1/docs", 200),
        ("GET", "/ca.pem", 200),
    ];
    let concrete = |p: &str| p.replace("{id}", "none").replace("{name}", "nobody");
    let mut wrong = Vec::new();
    for (method, path, body, need, want) in &table {
        let path = &concrete(path);
        let (code, _) = c.api(method, path, None, body.clone());
        if code != 401 {
            wrong.push(format!("{method} {path} without a token: {code}, want 401"));
        }
        for (role, token) in &tokens {
            let (code, v) = c.api(method, path, Some(token), body.clone());
            let ok = if role < need {
                code == 403
            } else {
                code == *want
            };
            if !ok {
                wrong.push(format!("{method} {path} as {role:?}: {code} {v}"));
            }
        }
    }
    for (method, path, want) in &open {
        let path = &concrete(path);
        for token in std::iter::once(None).chain(tokens.iter().map(|(_, t)| Some(t.as_str()))) {
            let code = http_raw(method, &c.rest, path, token).status;
            if code != *want {
                wrong.push(format!(
                    "{method} {path} with {token:?}: {code}, want {want}"
                ));
            }
        }
    }
    // The table covers every operation the OpenAPI document lists (and a unit test
    // ties that document to the router), so a new endpoint cannot skip this test.
    let doc: Value =
        serde_json::from_slice(&http_raw("GET", &c.rest, "/api/v1/openapi.json", None).body)
            .unwrap();
    let tested: Vec<(String, String)> = table
        .iter()
        .map(|(m, p, ..)| (m.to_lowercase(), p.to_string()))
        .chain(
            open.iter()
                .map(|(m, p, _)| (m.to_lowercase(), p.to_string())),
        )
        .collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if !tested.contains(&(method.clone(), path.clone())) {
                wrong.push(format!("{method} {path} is not in the role table"));
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

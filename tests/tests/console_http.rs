//! The console's rules over real HTTP against a real collector and agent, without a
//! browser (the browser test covers rendering): sign-in bounds, sessions ending,
//! forged and cross-site forms, roles on typed URLs, the API refusing the cookie,
//! security headers, hostile text escaped, and the CSV equal to the API's list.

use rampart_tests::cluster::{http_raw, http_request, wait_for, Agent, Collector};
use rampart_tests::console_http::{set_cookie, Console, SESSION};
use serde_json::json;

const HOSTILE: &str = "<script>alert('x')</script>\"quoted\"";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn same_origin() -> [(&'static str, &'static str); 1] {
    [("Sec-Fetch-Site", "same-origin")]
}

#[test]
fn console_sessions_forms_and_roles_hold() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    rampart_tests::failing_root(&root, &format!("Welcome {HOSTILE} to debian\n"));
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["mode"] = json!("block"));
    for (name, role) in [("vic", "viewer"), ("pat", "provisioner"), ("ada", "admin")] {
        c.console_user(name, role, &format!("{name}'s long password"));
    }
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(ok, "enroll failed: {out}");
    a.run(&[]);
    let agent_id = a.agent_id();
    let scan = c.completed_scan(&agent_id, 60);
    let scan_id = scan["id"].as_str().unwrap().to_string();
    assert_eq!(scan["blocked"], json!(true), "{scan}");

    // Not signed in: pages go to the sign-in form and come back after; `/` leads there.
    let r = http_raw("GET", &c.rest, "/", None);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/")));
    let r = http_raw("GET", &c.rest, "/ui/scans?status=completed", None);
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/ui/login?next=%2Fui%2Fscans%3Fstatus%3Dcompleted")
    );

    // Wrong passwords: refused, then bounded per user (the right one is refused too
    // while the name is under attack).
    let mut vic = Console::new(&c.rest);
    for _ in 0..5 {
        let r = vic.sign_in("vic", "not vic's password");
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(r.text().contains("role=\"alert\""), "{}", r.text());
    }
    let r = vic.sign_in("vic", "vic's long password");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(vic.session.is_none());
    let (_, log) = c.api(
        "GET",
        "/api/v1/audit?action=console.signin_failed",
        Some(&c.admin),
        None,
    );
    assert_eq!(log["total"], json!(5), "{log}");

    // A megabyte password is refused as any wrong one, without hashing it.
    let r = Console::new(&c.rest).sign_in("nobody", &"p".repeat(1 << 20));
    assert_eq!(r.status, 401, "{}", r.text());

    // Sign-in sets the __Host- cookie with its attributes.
    let mut pat = Console::new(&c.rest);
    let r = pat.sign_in("pat", "pat's long password");
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with(SESSION))
        .map(|(_, v)| v.clone())
        .unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }

    // A stranger's wrong guesses lock the name out of fresh browsers, never out of
    // the browser pat signed in with before (it holds the device cookie).
    assert!(
        pat.device.is_some(),
        "a sign-in gives the browser its device cookie"
    );
    let mut stranger = Console::new(&c.rest);
    for _ in 0..5 {
        assert_eq!(stranger.sign_in("pat", "a wrong guess!!").status, 401);
    }
    assert_eq!(stranger.sign_in("pat", "pat's long password").status, 429);
    let mut again = Console::new(&c.rest);
    again.device = pat.device.clone();
    assert_eq!(again.sign_in("pat", "pat's long password").status, 303);

    // Every console answer carries the CSP and the other headers.
    for path in [
        "/ui/",
        "/ui/scans",
        &format!("/ui/scans/{scan_id}"),
        "/ui/login",
        "/ui/nope",
    ] {
        let r = pat.get(path);
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
    }

    // The overview's 30-day trend holds today's one completed scan (SVG and table).
    let home = pat.get("/ui/").text();
    let today =
        rampart_report::rfc3339_ms(scan["created_at_ms"].as_i64().unwrap())[..10].to_string();
    let score = format!("{:.1}", scan["score"].as_f64().unwrap());
    assert!(
        home.contains("id=\"trend\"") && home.contains("<polyline"),
        "{home}"
    );
    assert!(
        home.contains(&format!(
            "<tr><td>{today}</td><td class=\"num\">{score}</td><td class=\"num\">1</td></tr>"
        )),
        "{home}"
    );

    // The provisioner sees scans; the hostile evidence is text, never markup.
    let detail = pat.get(&format!("/ui/scans/{scan_id}"));
    assert_eq!(detail.status, 200);
    let html = detail.text();
    assert!(!html.contains("<script>alert"), "unescaped evidence");
    assert!(
        html.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#34;quoted&#34;"),
        "{html}"
    );
    assert!(html.contains("id=\"block-reasons\""));
    // Failed rules carry their remediation; the others link to the rule's own page.
    assert!(
        html.contains("Lock each listed account"),
        "7.2.2's remediation inline"
    );
    let link = format!("/ui/scans/{scan_id}/rules/7.2.1\"");
    assert!(html.contains(&link), "a passing rule links to its page");
    let rule = pat.get(&format!("/ui/scans/{scan_id}/rules/7.2.1")).text();
    assert!(
        rule.contains("<h2>Remediation</h2>") && rule.contains("pwconv"),
        "{rule}"
    );
    assert_eq!(
        pat.get(&format!("/ui/scans/{scan_id}/rules/9.9.9")).status,
        404
    );
    // A host search finds the VM's scans by host name, in any case; a miss finds none.
    let found = pat.get("/ui/scans?q=VM").text();
    assert!(
        found.contains(&format!("data-scan-id=\"{scan_id}\"")),
        "{found}"
    );
    let none = pat.get("/ui/scans?q=no-such-host").text();
    assert!(!none.contains("data-scan-id"), "{none}");
    assert!(
        !html.contains("id=\"release\""),
        "no release for a provisioner"
    );
    // ...but not settings or releases, also when typed or posted.
    assert_eq!(pat.get("/ui/settings").status, 403);
    assert_eq!(pat.get(&format!("/ui/scans/{scan_id}/release")).status, 403);
    let csrf = pat.csrf("/ui/");
    let r = pat.post(
        &format!("/ui/scans/{scan_id}/release"),
        &[("csrf", &csrf)],
        &same_origin(),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("<h1>Forbidden</h1>"));

    // Enroll VMs: a token for a project, shown once with every provider's user-data,
    // which pins this collector's CA.
    let r = pat.post(
        "/ui/enroll",
        &[
            ("csrf", &csrf),
            ("project", "batch-7"),
            ("ttl", "3600"),
            ("uses", "3"),
            ("collector_url", "https://collector.example:8443"),
            ("download_base", "https://collector.example:8080"),
        ],
        &same_origin(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    // Template values reach the script base64-encoded.
    let fp = rampart_tests::base64(c.fingerprint.as_bytes());
    assert!(
        page.contains("#cloud-config") && page.contains(fp.as_str()),
        "{page}"
    );
    for p in [
        "ud-aws",
        "ud-gcp",
        "ud-azure",
        "ud-nocloud",
        "ud-proxmox",
        "ud-vmware",
    ] {
        assert!(page.contains(&format!("id=\"{p}\"")), "{p}");
    }
    // Without the SSH box ticked, the user-data carries no SSH key; with it, the
    // collector's key for the settings' SSH user.
    let key = c.ssh_public_key();
    let key64 = rampart_tests::base64(key.as_bytes());
    assert!(!page.contains(&key64), "no SSH key unless asked");
    let r = pat.post(
        "/ui/enroll",
        &[
            ("csrf", &csrf),
            ("project", "batch-8"),
            ("ttl", "3600"),
            ("uses", "1"),
            ("collector_url", "https://collector.example:8443"),
            ("download_base", "https://collector.example:8080"),
            ("ssh", "on"),
        ],
        &same_origin(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(page.contains(&key64), "the collector's SSH key: {page}");
    assert!(page.contains(&rampart_tests::base64(b"ubuntu")), "{page}");
    let tokens = c.admin("GET", "/api/v1/enrollment-tokens", None);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["project"] == json!("batch-7") && t["max_uses"] == json!(3)),
        "{tokens}"
    );
    let r = pat.post(
        "/ui/enroll",
        &[
            ("csrf", &csrf),
            ("project", "x"),
            ("ttl", "3600"),
            ("uses", "1"),
            ("collector_url", "https://c:1' ; rm -rf /"),
            ("download_base", "https://c:2"),
        ],
        &same_origin(),
    );
    assert_eq!(r.status, 422, "a quote in an address is refused");

    // A viewer signs in and sees no scan data.
    let mut viewer = Console::new(&c.rest);
    c.console_user("val", "viewer", "val's long password");
    assert_eq!(viewer.sign_in("val", "val's long password").status, 303);
    let home = viewer.get("/ui/").text();
    assert!(
        !home.contains(&scan_id) && !home.contains("data-card"),
        "{home}"
    );
    for path in [
        "/ui/scans".to_string(),
        "/ui/scans.csv".to_string(),
        format!("/ui/scans/{scan_id}"),
        format!("/ui/scans/{scan_id}/report.html"),
        format!("/ui/scans/{scan_id}/row"),
        format!("/ui/scans/{scan_id}/progress"),
        "/ui/scans?sort=score_low".to_string(),
        "/ui/settings".to_string(),
        "/ui/enroll".to_string(),
    ] {
        let r = viewer.get(&path);
        assert_eq!(r.status, 403, "{path}");
        assert!(!r.text().contains(&scan_id), "{path} leaks the scan");
    }

    // The API never takes the cookie.
    let cookie_only = format!("{SESSION}={}", pat.session.as_ref().unwrap());
    let r = http_request(
        "GET",
        &c.rest,
        "/api/v1/scans",
        &[("Cookie", &cookie_only)],
        b"",
    );
    assert_eq!(r.status, 401);

    // The admin: forged and cross-site forms change nothing.
    let mut ada = Console::new(&c.rest);
    assert_eq!(ada.sign_in("ada", "ada's long password").status, 303);
    let before = c.admin("GET", "/api/v1/settings", None);
    let csrf = ada.csrf("/ui/settings");
    let fields = |token: &str| {
        vec![
            ("csrf", token.to_string()),
            ("scanning_enabled", "on".to_string()),
            ("mode", "block".to_string()),
            ("profile", "level1-server".to_string()),
            ("min_score", "10".to_string()),
            ("schedule_cron", "0 3 * * *".to_string()),
            ("ssh_user", "ubuntu".to_string()),
        ]
    };
    let post = |token: &str, headers: &[(&str, &str)]| {
        let f = fields(token);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ada.post("/ui/settings", &f, headers)
    };
    for (token, headers, why) in [
        (
            csrf.as_str(),
            vec![("Sec-Fetch-Site", "cross-site")],
            "another site",
        ),
        (
            csrf.as_str(),
            vec![("Sec-Fetch-Site", "same-site")],
            "another site",
        ),
        (
            csrf.as_str(),
            vec![("Origin", "http://evil.example")],
            "another origin",
        ),
        (csrf.as_str(), vec![], "neither"),
        ("", vec![("Sec-Fetch-Site", "same-origin")], "token"),
        ("forged", vec![("Sec-Fetch-Site", "same-origin")], "token"),
    ] {
        let r = post(token, &headers);
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
        assert!(r.text().contains(why), "{why}: {}", r.text());
    }
    // Another session's token is not this session's.
    let pat_csrf = pat.csrf("/ui/");
    assert_eq!(post(&pat_csrf, &same_origin()).status, 403);
    assert_eq!(
        c.admin("GET", "/api/v1/settings", None),
        before,
        "nothing changed"
    );

    // A bad value names the field; a good one is saved and audited.
    let f = fields(&csrf);
    let mut f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    f[4].1 = "150";
    let r = ada.post("/ui/settings", &f, &same_origin());
    assert_eq!(r.status, 422);
    assert!(r.text().contains("150"), "{}", r.text());
    f[4].1 = "10";
    let r = ada.post("/ui/settings", &f, &same_origin());
    assert_eq!(r.status, 303, "{}", r.text());
    let now = c.admin("GET", "/api/v1/settings", None);
    assert_eq!(
        (now["min_score"].as_f64(), now["mode"].as_str()),
        (Some(10.0), Some("block"))
    );

    // Release through the confirmation page; the gate opens.
    let confirm = ada.get(&format!("/ui/scans/{scan_id}/release")).text();
    assert!(
        confirm.contains("id=\"release-confirm\"") && confirm.contains("critical"),
        "{confirm}"
    );
    let r = ada.post(
        &format!("/ui/scans/{scan_id}/release"),
        &[("csrf", &csrf)],
        &same_origin(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let gate = c.admin("GET", &format!("/api/v1/handover/{agent_id}"), None);
    assert_eq!(gate["allowed"], json!(true), "{gate}");

    // The VM's page: identity, the gate as the API has it, history; a provisioner
    // scans again; a viewer sees none of it.
    let vm = pat.get(&format!("/ui/vms/{agent_id}"));
    assert_eq!(vm.status, 200, "{}", vm.text());
    let vm = vm.text();
    assert!(
        vm.contains("id=\"vm-facts\"") && vm.contains("(released)"),
        "{vm}"
    );
    assert!(
        vm.contains("id=\"score-history\"") && vm.contains("<svg"),
        "{vm}"
    );
    assert!(
        !vm.contains("id=\"revoke\""),
        "no revoke form for a provisioner"
    );
    assert_eq!(viewer.get(&format!("/ui/vms/{agent_id}")).status, 403);
    let r = pat.post(
        &format!("/ui/scans/{scan_id}/rescan"),
        &[("csrf", &pat_csrf)],
        &same_origin(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let new_scan = r
        .header("location")
        .unwrap()
        .trim_start_matches("/ui/scans/")
        .to_string();
    assert_ne!(new_scan, scan_id);
    let second = wait_for("the second scan to complete", 60, || {
        let s = c.admin("GET", &format!("/api/v1/scans/{new_scan}"), None)["scan"].take();
        (s["status"] == json!("completed")).then_some(s)
    });
    assert_eq!(second["trigger"], json!("manual"), "{second}");
    let r = pat.post(
        &format!("/ui/scans/{new_scan}/rescan"),
        &[("csrf", "forged")],
        &same_origin(),
    );
    assert_eq!(r.status, 403);
    // What changed since the scan before: the same root, so nothing.
    let detail = pat.get(&format!("/ui/scans/{new_scan}")).text();
    assert!(detail.contains("No rule changed status since"), "{detail}");

    // The CSV holds what the API lists, cell for cell where they overlap.
    let csv = ada.get("/ui/scans.csv").text();
    let api = c.admin("GET", "/api/v1/scans?per_page=500", None);
    let api_ids: Vec<&str> = api["scans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("scan_id,agent_id,host,"));
    let csv_ids: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(csv_ids, api_ids);

    // Revoking the VM's agent needs the admin and the confirmation box.
    let r = ada.post(
        &format!("/ui/vms/{agent_id}/revoke"),
        &[("csrf", &csrf)],
        &same_origin(),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let r = pat.post(
        &format!("/ui/vms/{agent_id}/revoke"),
        &[("csrf", &pat_csrf), ("confirm", "yes")],
        &same_origin(),
    );
    assert_eq!(r.status, 403);
    let r = ada.post(
        &format!("/ui/vms/{agent_id}/revoke"),
        &[("csrf", &csrf), ("confirm", "yes")],
        &same_origin(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(ada
        .get(&format!("/ui/vms/{agent_id}"))
        .text()
        .contains("revoked"));
    let agents = c.agents();
    assert!(agents.to_string().contains("\"revoked\":true"), "{agents}");

    // Sign-out ends the session on the server: the old cookie is worthless.
    let old = ada.session.clone().unwrap();
    let r = ada.post("/ui/logout", &[("csrf", &csrf)], &same_origin());
    assert_eq!(r.status, 303);
    assert_eq!(set_cookie(&r, SESSION).as_deref(), Some(""));
    let replay = format!("{SESSION}={old}");
    let r = http_request("GET", &c.rest, "/ui/settings", &[("Cookie", &replay)], b"");
    assert_eq!(r.status, 303, "replayed cookie after sign-out");

    // Revoking a user ends their session at once.
    c.admin("DELETE", "/api/v1/users/pat", None);
    assert_eq!(pat.get("/ui/scans").status, 303);

    // A sign-in may only send the user on inside the console.
    let r = http_raw("GET", &c.rest, "/ui/login?next=https://evil.example/", None);
    assert!(r.text().contains("name=\"next\" value=\"/ui/\""));
    a.stop();
}

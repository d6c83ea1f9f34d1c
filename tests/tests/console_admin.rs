//! The console's admin pages (docs/console.md) over real HTTP against a real collector:
//! Users and tokens (`/ui/users`) and the Audit log (`/ui/audit`). Only admins see or
//! change anything there; forged forms change nothing; what an admin does through the
//! console is what the API then reports (tokens work or stop working, sessions end);
//! the audit page filters, pages by cursor and says whether its entries chain, also
//! after the log was edited behind the collector's back.

use rampart_collector::store::AuditRecord;
use rampart_tests::cluster::{http_request, Collector, RawResponse};
use rampart_tests::console_http::{input_value, Console};
use serde_json::{json, Value};

const HOSTILE: &str = "<script>alert('x')</script>\"quoted\"";
/// `HOSTILE` inside the JSON of a settings change (quotes backslashed), escaped.
const HOSTILE_ESCAPED: &str =
    "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;\\&#34;quoted\\&#34;";

fn same_origin() -> [(&'static str, &'static str); 1] {
    [("Sec-Fetch-Site", "same-origin")]
}

/// The values of attribute `attr` in the page, in order (`data-seq`, `data-user`...).
fn attrs(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// The markup of the table row whose `attr` is `value`.
fn row<'a>(html: &'a str, attr: &str, value: &str) -> Option<&'a str> {
    let at = html.find(&format!("<tr {attr}=\"{value}\""))?;
    let rest = &html[at..];
    Some(&rest[..rest.find("</tr>")?])
}

/// The text of the element with this `id` (up to its first tag's end).
fn by_id<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(&rest[start..end])
}

/// The `href` of `a[rel=next]`, unescaped.
fn next_link(html: &str) -> Option<String> {
    let at = html.find("rel=\"next\" href=\"")?;
    let rest = &html[at + 17..];
    Some(
        rest[..rest.find('"')?]
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}

fn user<'a>(users: &'a Value, name: &str) -> Option<&'a Value> {
    users.as_array().unwrap().iter().find(|u| u["name"] == name)
}

/// The account state the forged and refused forms must leave alone.
fn accounts(c: &Collector) -> (Value, Value) {
    (
        c.admin("GET", "/api/v1/users", None),
        c.admin("GET", "/api/v1/enrollment-tokens", None),
    )
}

fn alert(r: &RawResponse) -> bool {
    r.text().contains("role=\"alert\"")
}

#[test]
fn admins_manage_users_and_tokens_and_nobody_else_does() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    for (name, role) in [
        ("vic", "viewer"),
        ("ulla", "user"),
        ("pat", "provisioner"),
        ("ada", "admin"),
    ] {
        c.console_user(name, role, &format!("{name}'s long password"));
    }
    let tok = c.admin(
        "POST",
        "/api/v1/enrollment-tokens",
        Some(json!({"project": "web", "max_uses": 2})),
    );
    let tok_id = tok["id"].as_str().unwrap().to_string();
    let before = accounts(&c);

    // Every new route, as GET and as POST with fields that would change something.
    let gets = [
        "/ui/audit".to_string(),
        "/ui/users".to_string(),
        "/ui/users/ada/revoke".to_string(),
        "/ui/users/ada/password".to_string(),
        format!("/ui/tokens/{tok_id}/revoke"),
    ];
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/ui/users".into(),
            vec![
                ("name", "mallory"),
                ("role", "admin"),
                ("password", "mallory's password"),
            ],
        ),
        ("/ui/users/ada/revoke".into(), vec![("confirm", "yes")]),
        (
            "/ui/users/ada/password".into(),
            vec![
                ("password", "taken over at last"),
                ("password_again", "taken over at last"),
            ],
        ),
        (format!("/ui/tokens/{tok_id}/revoke"), vec![]),
    ];
    let with_csrf = |csrf: &str, fields: &[(&'static str, &'static str)]| {
        let mut f: Vec<(String, String)> = vec![("csrf".into(), csrf.into())];
        f.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        f
    };
    let post = |who: &Console, path: &str, fields: &[(String, String)], h: &[(&str, &str)]| {
        let f: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        who.post(path, &f, h)
    };

    // Viewers, users and provisioners: 403 everywhere, with a valid token too.
    for name in ["vic", "ulla", "pat"] {
        let mut who = Console::new(&c.rest);
        assert_eq!(
            who.sign_in(name, &format!("{name}'s long password")).status,
            303
        );
        let home = who.get("/ui/").text();
        assert!(
            !home.contains("href=\"/ui/users\"") && !home.contains("href=\"/ui/audit\""),
            "{name} sees the admin entries in the navigation"
        );
        for path in &gets {
            let r = who.get(path);
            assert_eq!(r.status, 403, "{name}: GET {path}");
            assert!(
                r.text().contains("<h1>Forbidden</h1>"),
                "{name}: GET {path}"
            );
            assert!(
                !r.text().contains(&tok_id),
                "{name}: GET {path} leaks the token"
            );
        }
        let csrf = who.csrf("/ui/");
        for (path, fields) in &posts {
            let r = post(&who, path, &with_csrf(&csrf, fields), &same_origin());
            assert_eq!(r.status, 403, "{name}: POST {path}");
            assert!(r.text().contains("admin role"), "{name}: POST {path}");
        }
    }
    assert_eq!(accounts(&c), before, "non-admins changed accounts");

    // The admin: both pages in the navigation, the current one marked.
    let mut ada = Console::new(&c.rest);
    assert_eq!(ada.sign_in("ada", "ada's long password").status, 303);
    let page = ada.get("/ui/users");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("<a href=\"/ui/users\" aria-current=\"page\">"),
        "{html}"
    );
    assert!(html.contains("<a href=\"/ui/audit\">"), "{html}");
    assert!(html.contains("<table id=\"users\">") && html.contains("<table id=\"tokens\">"));
    assert_eq!(
        attrs(&html, "data-user"),
        ["ada", "admin", "pat", "ulla", "vic"],
        "every user, by name"
    );
    let ada_row = row(&html, "data-user", "ada").unwrap();
    assert!(
        !ada_row.contains("revoke-user"),
        "nobody revokes themselves: {ada_row}"
    );
    let pat_row = row(&html, "data-user", "pat").unwrap();
    assert!(
        pat_row.contains("class=\"revoke-user\"") && pat_row.contains("Revoke pat"),
        "{pat_row}"
    );
    let tok_row = row(&html, "data-token", &tok_id).unwrap();
    assert!(
        tok_row.contains("web") && tok_row.contains("0 / 2"),
        "{tok_row}"
    );
    assert!(
        !html.contains(tok["token"].as_str().unwrap()),
        "a token's secret is listed"
    );
    let audit = ada.get("/ui/audit").text();
    assert!(audit.contains("<a href=\"/ui/audit\" aria-current=\"page\">"));

    // Forged forms: another site, another origin, no token, a wrong token, another
    // session's token. Each is a 403 that says why; nothing changes.
    let csrf = ada.csrf("/ui/users");
    let mut pat = Console::new(&c.rest);
    pat.sign_in("pat", "pat's long password");
    let pat_csrf = pat.csrf("/ui/");
    // (csrf, the one header, the reason the 403 gives)
    let forged: [(&str, (&str, &str), &str); 6] = [
        (&csrf, ("Sec-Fetch-Site", "cross-site"), "another site"),
        (&csrf, ("Sec-Fetch-Site", "same-site"), "another site"),
        (&csrf, ("Origin", "http://evil.example"), "another origin"),
        ("", ("Sec-Fetch-Site", "same-origin"), "token"),
        ("forged", ("Sec-Fetch-Site", "same-origin"), "token"),
        (&pat_csrf, ("Sec-Fetch-Site", "same-origin"), "token"),
    ];
    for (path, fields) in &posts {
        for (token, header, why) in &forged {
            let r = post(&ada, path, &with_csrf(token, fields), &[*header]);
            assert_eq!(r.status, 403, "POST {path} {header:?}: {}", r.text());
            assert!(r.text().contains(why), "POST {path}: {why}: {}", r.text());
        }
        // Without the field at all.
        let bare: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            post(&ada, path, &bare, &same_origin()).status,
            403,
            "{path}"
        );
    }
    assert_eq!(accounts(&c), before, "a forged form changed accounts");
    assert_eq!(
        Console::new(&c.rest)
            .sign_in("ada", "ada's long password")
            .status,
        303,
        "ada's password is unchanged"
    );

    // A user created through the form: the API token is shown once and works.
    let r = ada.post(
        "/ui/users",
        &[("csrf", &csrf), ("name", "newbie"), ("role", "provisioner")],
        &same_origin(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    let secret = by_id(&html, "new-secret").expect("#new-secret").to_string();
    assert!(secret.starts_with("rpt_"), "{secret}");
    assert!(html.contains("no console password"), "{html}");
    assert!(row(&html, "data-user", "newbie").is_some_and(|r| r.contains("provisioner")));
    let (code, _) = c.api("GET", "/api/v1/scans", Some(&secret), None);
    assert_eq!(code, 200, "the new provisioner's token");
    let again = ada.get("/ui/users").text();
    assert!(!again.contains(&secret), "the token is shown twice");
    assert!(!again.contains("id=\"new-secret\""));

    // With a console password: the page says so and the user signs in.
    let r = ada.post(
        "/ui/users",
        &[
            ("csrf", &csrf),
            ("name", "walt"),
            ("role", "viewer"),
            ("password", "walt's long password"),
        ],
        &same_origin(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("console password is set"), "{}", r.text());
    let users = c.admin("GET", "/api/v1/users", None);
    assert_eq!(user(&users, "walt").unwrap()["has_password"], json!(true));
    let mut walt = Console::new(&c.rest);
    assert_eq!(walt.sign_in("walt", "walt's long password").status, 303);

    // Refused creations: the status of the App's error, an alert, the name kept, and
    // never a password echoed.
    for (fields, status, words) in [
        (
            vec![("name", "newbie"), ("role", "viewer")],
            409,
            "already exists",
        ),
        (
            vec![("name", "bad name"), ("role", "viewer")],
            422,
            "user name",
        ),
        (
            vec![
                ("name", "shorty"),
                ("role", "viewer"),
                ("password", "short pw"),
            ],
            422,
            "password",
        ),
        (vec![("name", "roley"), ("role", "root")], 422, "role"),
    ] {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend(fields.iter().copied());
        let r = ada.post("/ui/users", &f, &same_origin());
        assert_eq!(r.status, status, "{fields:?}: {}", r.text());
        assert!(
            alert(&r) && r.text().contains(words),
            "{fields:?}: {}",
            r.text()
        );
        assert!(!r.text().contains("short pw"), "a password is echoed");
        assert_eq!(
            input_value(&r.text(), "name").as_deref(),
            Some(fields[0].1),
            "the name is kept"
        );
        assert!(!r.text().contains("id=\"new-secret\""));
    }
    let users = c.admin("GET", "/api/v1/users", None);
    assert!(user(&users, "shorty").is_none() && user(&users, "roley").is_none());

    // A password set by the admin: newbie signs in with it.
    let form = ada.get("/ui/users/newbie/password");
    assert_eq!(form.status, 200);
    assert!(form.text().contains("id=\"set-password\""));
    let set = |name: &str, a: &str, b: &str| {
        ada.post(
            &format!("/ui/users/{name}/password"),
            &[("csrf", &csrf), ("password", a), ("password_again", b)],
            &same_origin(),
        )
    };
    let r = set("newbie", "newbie's new password", "newbie's other password");
    assert_eq!(r.status, 422, "passwords that differ");
    assert!(alert(&r) && r.text().contains("differ"));
    let r = set("newbie", "short", "short");
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(alert(&r));
    let r = set("nobody", "nobody's long password", "nobody's long password");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(alert(&r));
    let r = set("newbie", "newbie's new password", "newbie's new password");
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").unwrap().to_string();
    assert_eq!(to, "/ui/users?done=password&user=newbie");
    let done = ada.get(&to).text();
    assert!(
        done.contains("role=\"status\">newbie&#39;s console password was set"),
        "{done}"
    );
    // A crafted link claims nothing the store does not show.
    let crafted = ada.get("/ui/users?done=revoked&user=ada").text();
    assert!(!crafted.contains("role=\"status\""), "{crafted}");
    let mut newbie = Console::new(&c.rest);
    assert_eq!(
        newbie.sign_in("newbie", "newbie's new password").status,
        303
    );
    assert_eq!(newbie.get("/ui/scans").status, 200);

    // Revocation: the table's button asks first; confirmed, the token and the console
    // session end at once.
    let r = ada.post(
        "/ui/users/newbie/revoke",
        &[("csrf", &csrf)],
        &same_origin(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let confirm = r.text();
    assert!(
        confirm.contains("id=\"revoke-confirm\"") && confirm.contains("Revoke newbie now"),
        "{confirm}"
    );
    assert_eq!(
        c.api("GET", "/api/v1/scans", Some(&secret), None).0,
        200,
        "asked, not done"
    );
    assert_eq!(
        ada.get("/ui/users/newbie/revoke").text(),
        confirm,
        "GET asks the same"
    );
    let r = ada.post(
        "/ui/users/newbie/revoke",
        &[("csrf", &csrf), ("confirm", "yes")],
        &same_origin(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(c.api("GET", "/api/v1/scans", Some(&secret), None).0, 401);
    let r = newbie.get("/ui/scans");
    assert_eq!(r.status, 303, "the revoked user's session goes on");
    let list = ada.get(r#"/ui/users?done=revoked&user=newbie"#).text();
    assert!(list.contains("role=\"status\">newbie is revoked"), "{list}");
    let newbie_row = row(&list, "data-user", "newbie").unwrap();
    assert!(newbie_row.contains("revoked") && !newbie_row.contains("revoke-user"));
    let users = c.admin("GET", "/api/v1/users", None);
    assert_eq!(user(&users, "newbie").unwrap()["revoked"], json!(true));

    // Refusals of the App: yourself (409), nobody (404), a revoked user's password (409).
    for (path, fields, status) in [
        ("/ui/users/ada/revoke", vec![("confirm", "yes")], 409),
        ("/ui/users/nobody/revoke", vec![("confirm", "yes")], 404),
        (
            "/ui/users/newbie/password",
            vec![
                ("password", "a long password again"),
                ("password_again", "a long password again"),
            ],
            409,
        ),
        ("/ui/tokens/tok-nothing/revoke", vec![], 404),
    ] {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend(fields);
        let r = ada.post(path, &f, &same_origin());
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(alert(&r), "{path}: {}", r.text());
    }
    let users = c.admin("GET", "/api/v1/users", None);
    assert_eq!(user(&users, "ada").unwrap()["revoked"], json!(false));

    // An enrollment token revoked through the console.
    let r = ada.post(
        &format!("/ui/tokens/{tok_id}/revoke"),
        &[("csrf", &csrf)],
        &same_origin(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let tokens = c.admin("GET", "/api/v1/enrollment-tokens", None);
    let t = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(tok_id))
        .unwrap();
    assert_eq!(t["revoked"], json!(true), "{t}");
    let list = ada.get(r.header("location").unwrap()).text();
    assert!(
        list.contains(&format!("Enrollment token {tok_id} is revoked")),
        "{list}"
    );
    assert!(!row(&list, "data-token", &tok_id)
        .unwrap()
        .contains("revoke-token"));

    // The audit page shows it all, with ada as the actor.
    let log = ada.get("/ui/audit?actor=ada").text();
    for (action, target) in [
        ("user.create", "newbie"),
        ("user.create", "walt"),
        ("user.password", "newbie"),
        ("user.revoke", "newbie"),
        ("token.revoke", tok_id.as_str()),
    ] {
        let seqs = attrs(&log, "data-seq");
        assert!(
            seqs.iter().any(|s| {
                let r = row(&log, "data-seq", s).unwrap();
                r.contains(&format!("<td>{action}</td>")) && r.contains(target)
            }),
            "{action} {target} not in the audit page: {log}"
        );
    }
}

/// Rewrites one audit entry's detail in a stopped collector's database.
fn edit_entry(db: &std::path::Path, seq: u64) {
    let raw = sled::open(db).unwrap();
    let tree = raw.open_tree("audit").unwrap();
    let key = seq.to_be_bytes();
    let mut e: AuditRecord = serde_json::from_slice(&tree.get(key).unwrap().unwrap()).unwrap();
    e.detail = "nothing to see here".into();
    tree.insert(key, serde_json::to_vec(&e).unwrap()).unwrap();
    raw.flush().unwrap();
}

/// Every row of the audit page from `path` on, following `a[rel=next]`: (seq, row
/// markup) newest first, and the `#chain-state` of every page.
fn walk(ada: &Console, path: &str) -> (Vec<(u64, String)>, Vec<String>) {
    let (mut rows, mut states) = (Vec::new(), Vec::new());
    let mut next = Some(path.to_string());
    while let Some(p) = next {
        let r = ada.get(&p);
        assert_eq!(r.status, 200, "{p}");
        let html = r.text();
        let seqs = attrs(&html, "data-seq");
        assert!(
            seqs.is_empty()
                || (html.contains("<table id=\"audit\">") && html.contains("<caption>")),
            "{p}"
        );
        for s in seqs {
            rows.push((
                s.parse().unwrap(),
                row(&html, "data-seq", &s).unwrap().to_string(),
            ));
        }
        states.push(
            by_id(&html, "chain-state")
                .expect("#chain-state")
                .to_string(),
        );
        next = next_link(&html);
        assert!(states.len() < 20, "paging does not end");
    }
    (rows, states)
}

#[test]
fn the_audit_page_filters_pages_and_checks_its_chain() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let mut c = Collector::start(&data, None, None);
    let admin = c.admin.clone();
    c.console_user("ada", "admin", "ada's long password");
    c.console_user("pat", "provisioner", "pat's long password");
    // More than a page (50) of one action, by the API's admin.
    for i in 0..56 {
        c.user(&format!("u{i:02}"), "viewer");
    }
    // A settings change whose detail is long JSON with hostile text in it.
    c.set_settings(|s| {
        s["ssh_user"] = json!(HOSTILE);
        s["exempt_projects"] = json!((0..40).map(|i| format!("project-{i}")).collect::<Vec<_>>());
    });
    let mut ada = Console::new(&c.rest);
    assert_eq!(ada.sign_in("ada", "ada's long password").status, 303);

    // The whole log, newest first, across pages, equal to the API's.
    let api = c.admin("GET", "/api/v1/audit?per_page=1000", None);
    let total = api["total"].as_u64().unwrap();
    assert!(total > 60, "{total}");
    let (rows, states) = walk(&ada, "/ui/audit");
    let seqs: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=total).rev().collect::<Vec<_>>(),
        "every entry once"
    );
    assert!(states.len() >= 2, "one page only");
    for s in &states {
        assert!(s.contains("entries shown chain correctly"), "{s}");
    }
    let first = ada.get("/ui/audit").text();
    assert!(first.contains("data-intact=\"true\""));
    assert!(
        first.contains("The 50 entries shown chain correctly"),
        "{first}"
    );
    assert!(!first.contains("<script>alert"), "unescaped");
    assert!(
        first.contains(HOSTILE_ESCAPED),
        "the hostile detail, escaped"
    );
    let (_, change) = rows
        .iter()
        .find(|(_, r)| r.contains("<td>settings.change</td>"))
        .unwrap();
    assert!(
        change.contains("<td class=\"detail\">old {") && change.contains("project-39"),
        "{change}"
    );

    // Filtered by action: only that action, every one, paged with the filter kept.
    let (rows, states) = walk(&ada, "/ui/audit?action=user.create");
    let api = c.admin(
        "GET",
        "/api/v1/audit?action=user.create&per_page=1000",
        None,
    );
    let want: Vec<u64> = api["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        want.len(),
        59,
        "the first admin, ada, pat and 56 more: {api}"
    );
    assert_eq!(rows.iter().map(|(s, _)| *s).collect::<Vec<_>>(), want);
    assert!(rows.iter().all(|(_, r)| r.contains("<td>user.create</td>")));
    assert_eq!(states.len(), 2);
    for s in &states {
        assert!(s.contains("entries shown chain correctly"), "{s}");
    }
    let page = ada.get("/ui/audit?action=user.create").text();
    assert!(
        page.contains("name=\"action\" value=\"user.create\""),
        "the form keeps the filter"
    );
    assert!(next_link(&page)
        .unwrap()
        .starts_with("/ui/audit?action=user.create&before="));

    // By actor, and by both.
    let (rows, _) = walk(&ada, "/ui/audit?actor=ada");
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|(_, r)| r.contains("<td class=\"wrap\">ada</td>")));
    let (rows, _) = walk(&ada, "/ui/audit?actor=admin&action=settings.change");
    assert_eq!(rows.len(), 1);
    let (rows, _) = walk(&ada, "/ui/audit?actor=nobody");
    assert!(rows.is_empty());
    let empty = ada.get("/ui/audit?actor=nobody").text();
    assert!(empty.contains("No entries match"), "{empty}");
    let hostile = ada
        .get(&format!(
            "/ui/audit?actor={}",
            "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
        ))
        .text();
    assert!(
        !hostile.contains("<script>alert(1)"),
        "a hostile filter is echoed raw"
    );
    let r = ada.get("/ui/audit?before=-3");
    assert_eq!(r.status, 400);
    assert!(alert(&r));

    // Someone edits an entry behind the collector's back: the pages showing it, and
    // the page whose entries link to it, say where the chain breaks.
    let victim = c.admin("GET", "/api/v1/audit?action=settings.change", None)["entries"][0]["seq"]
        .as_u64()
        .unwrap();
    c.kill9();
    edit_entry(&data.join("db"), victim);
    let c = Collector::start(&data, None, Some(&admin));
    let mut ada = Console::new(&c.rest);
    assert_eq!(ada.sign_in("ada", "ada's long password").status, 303);
    for path in [
        "/ui/audit?action=settings.change".to_string(),
        format!("/ui/audit?before={}", victim + 1),
        format!("/ui/audit?before={}", victim + 3),
    ] {
        let html = ada.get(&path).text();
        let state = by_id(&html, "chain-state").unwrap();
        assert!(
            html.contains("data-intact=\"false\" role=\"alert\"")
                && state.contains(&format!("broken at seq {victim}:"))
                && state.contains("edited"),
            "{path}: {state}"
        );
    }
    // A page without the entry, nor the one after it, is still intact.
    let html = ada.get(&format!("/ui/audit?before={victim}")).text();
    assert!(html.contains("data-intact=\"true\""), "{html}");

    // A provisioner still gets nothing, and the API's answer matches the page.
    let mut pat = Console::new(&c.rest);
    assert_eq!(pat.sign_in("pat", "pat's long password").status, 303);
    assert_eq!(pat.get("/ui/audit").status, 403);
    let r = http_request("GET", &c.rest, "/ui/audit", &[], b"");
    assert_eq!(r.status, 303, "signed out: to the sign-in form");
}

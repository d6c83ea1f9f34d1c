//! The console spoken to over plain HTTP, as a browser would (cookies, forms,
//! `Sec-Fetch-Site`), for tests of its rules that need no browser: sessions, CSRF,
//! origins, roles, bounds. The real-browser tests drive Chromium instead.

use crate::cluster::{http_request, RawResponse};

/// `application/x-www-form-urlencoded`.
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value a `Set-Cookie` of the response gives `name`, if any.
pub fn set_cookie(r: &RawResponse, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| {
            v.split(';')
                .next()?
                .trim()
                .strip_prefix(&format!("{name}="))
                .map(String::from)
        })
}

/// The `value` of the first `<input name="NAME" value="...">` in a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

pub const SESSION: &str = "__Host-rampart_session";
pub const LOGIN: &str = "__Host-rampart_login";
pub const DEVICE: &str = "__Host-rampart_device";

/// A browser-like client of one console.
pub struct Console {
    pub addr: String,
    /// The session cookie's value, once signed in.
    pub session: Option<String>,
    /// The device cookie a sign-in gave this browser, sent with later sign-ins.
    pub device: Option<String>,
}

impl Console {
    pub fn new(addr: &str) -> Console {
        Console {
            addr: addr.to_string(),
            session: None,
            device: None,
        }
    }

    fn cookie_header(&self) -> Option<String> {
        self.session.as_ref().map(|s| format!("{SESSION}={s}"))
    }

    pub fn get(&self, path: &str) -> RawResponse {
        let c = self.cookie_header();
        let mut h = vec![("Sec-Fetch-Site", "same-origin")];
        if let Some(c) = &c {
            h.push(("Cookie", c));
        }
        http_request("GET", &self.addr, path, &h, b"")
    }

    /// Posts a form with the session's cookie and the given extra headers (the
    /// fetch site, an origin...).
    pub fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> RawResponse {
        let c = self.cookie_header();
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(c) = &c {
            h.push(("Cookie", c));
        }
        h.extend_from_slice(headers);
        http_request("POST", &self.addr, path, &h, form_encode(fields).as_bytes())
    }

    /// The CSRF token of the page at `path` (from its sign-out form).
    pub fn csrf(&self, path: &str) -> String {
        let page = self.get(path).text();
        input_value(&page, "csrf").unwrap_or_else(|| panic!("no csrf on {path}: {page}"))
    }

    /// Signs in through the form, as a browser does; the answer to the form.
    pub fn sign_in(&mut self, name: &str, password: &str) -> RawResponse {
        let form = http_request("GET", &self.addr, "/ui/login", &[], b"");
        let token = set_cookie(&form, LOGIN).expect("the sign-in form sets its cookie");
        let csrf = input_value(&form.text(), "csrf").expect("the sign-in form has a token");
        let mut cookie = format!("{LOGIN}={token}");
        if let Some(d) = &self.device {
            cookie.push_str(&format!("; {DEVICE}={d}"));
        }
        let r = http_request(
            "POST",
            &self.addr,
            "/ui/login",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Sec-Fetch-Site", "same-origin"),
                ("Cookie", &cookie),
            ],
            form_encode(&[
                ("csrf", &csrf),
                ("next", "/ui/"),
                ("name", name),
                ("password", password),
            ])
            .as_bytes(),
        );
        if let Some(s) = set_cookie(&r, SESSION) {
            self.session = Some(s);
        }
        if let Some(d) = set_cookie(&r, DEVICE) {
            self.device = Some(d);
        }
        r
    }
}

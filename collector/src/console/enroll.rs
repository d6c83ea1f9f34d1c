//! Enroll VMs (provisioner and admin): a bootstrap token for a project, shown once,
//! with the ready-to-paste cloud-init user-data of every provider, rendered from the
//! templates in `cloud-init/` exactly as Terraform's templatefile() renders them.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::view::{self, Chrome};
use super::{Failure, Page, Ui};
use crate::app::signin::ConsoleUser;
use crate::app::{App, AppError};
use crate::auth::Role;

/// The providers' templates, compiled in.
const TEMPLATES: [(&str, &str, &str); 6] = [
    (
        "aws",
        "AWS EC2",
        include_str!("../../../cloud-init/aws/user-data.yaml.tftpl"),
    ),
    (
        "gcp",
        "Google Compute Engine",
        include_str!("../../../cloud-init/gcp/user-data.yaml.tftpl"),
    ),
    (
        "azure",
        "Azure",
        include_str!("../../../cloud-init/azure/user-data.yaml.tftpl"),
    ),
    (
        "nocloud",
        "NoCloud (libvirt, bare metal)",
        include_str!("../../../cloud-init/nocloud/user-data.yaml.tftpl"),
    ),
    (
        "proxmox",
        "Proxmox VE",
        include_str!("../../../cloud-init/proxmox/user-data.yaml.tftpl"),
    ),
    (
        "vmware",
        "VMware vSphere",
        include_str!("../../../cloud-init/vmware/user-data.yaml.tftpl"),
    ),
];

/// Renders a template as Terraform's templatefile() would: `${name}` becomes the value,
/// `${base64encode(name)}` its base64; any other expression is an error naming it.
pub fn render(text: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    use base64::Engine;
    let mut out = String::with_capacity(text.len() + 512);
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or("a `${` without its `}`")?;
        let expr = &after[..end];
        let (name, encode) = match expr
            .strip_prefix("base64encode(")
            .and_then(|e| e.strip_suffix(')'))
        {
            Some(inner) => (inner, true),
            None => (expr, false),
        };
        let value = vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                format!("the template uses `${{{expr}}}`, which is not a known variable")
            })?;
        if encode {
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(value));
        } else {
            out.push_str(value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub struct UserData {
    id: &'static str,
    name: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage {
    c: Chrome,
    csrf: String,
    project: String,
    ttl: String,
    uses: String,
    collector_url: String,
    download_base: String,
    error: Option<String>,
    token: Option<String>,
    expires: String,
    user_data: Vec<UserData>,
    plain_http: bool,
    /// Whether the user-data gives the collector's SSH key to the SSH user.
    ssh: bool,
    ssh_user: String,
}

fn blank(app: &App, u: &ConsoleUser) -> EnrollPage {
    let cfg = &app.config;
    let host = cfg
        .server_names
        .first()
        .map_or("localhost".to_string(), |h| h.clone());
    EnrollPage {
        c: Chrome::new("Enroll VMs", Some(u), "enroll"),
        csrf: u.session.csrf.clone(),
        project: String::new(),
        ttl: "86400".into(),
        uses: "1".into(),
        collector_url: format!("https://{host}:{}", cfg.grpc_listen.port()),
        download_base: cfg.public_base(),
        error: None,
        token: None,
        expires: String::new(),
        user_data: Vec::new(),
        plain_http: !cfg.rest_tls,
        ssh: false,
        ssh_user: app.settings().ssh_user,
    }
}

pub async fn form(State(app): State<Arc<App>>, ui: Ui) -> Page {
    let u = ui.require(Role::Provisioner, "Enrolling VMs")?;
    Ok(view::html(&blank(&app, u)))
}

#[derive(Deserialize)]
struct EnrollForm {
    #[serde(default)]
    project: String,
    #[serde(default)]
    ttl: String,
    #[serde(default)]
    uses: String,
    #[serde(default)]
    collector_url: String,
    #[serde(default)]
    download_base: String,
    #[serde(default)]
    ssh: Option<String>,
}

pub async fn create(
    State(app): State<Arc<App>>,
    ui: Ui,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let (f, u) =
        ui.form::<EnrollForm>(&app, &headers, &body, Role::Provisioner, "Enrolling VMs")?;
    let mut page = blank(&app, u);
    page.project = f.project.trim().to_string();
    page.ttl = f.ttl.clone();
    page.uses = f.uses.clone();
    page.collector_url = f.collector_url.trim().to_string();
    page.download_base = f.download_base.trim().trim_end_matches('/').to_string();
    page.ssh = f.ssh.as_deref() == Some("on");
    let ssh_key = match (page.ssh, app.ssh_key()) {
        (false, _) => String::new(),
        (true, Some(k)) => k.public_openssh().to_string(),
        (true, None) => {
            let why = "The collector's SSH key is not loaded yet; try again in a moment.";
            return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, why).with_user(u));
        }
    };
    let refuse = |mut page: EnrollPage, why: String| {
        page.error = Some(why);
        Ok((StatusCode::UNPROCESSABLE_ENTITY, view::html(&page)).into_response())
    };
    let Ok(ttl) = f.ttl.trim().parse::<i64>() else {
        return refuse(page, "The lifetime must be a number of seconds.".into());
    };
    let Ok(uses) = f.uses.trim().parse::<u32>() else {
        return refuse(page, "Uses must be a number from 1 to 100000.".into());
    };
    let bad_url = |v: &str| {
        !(v.starts_with("https://")
            && v.len() > 8
            && v.len() <= 512
            && !v
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "'\"`$\\".contains(c)))
    };
    let bad_field = if bad_url(&page.collector_url) {
        Some("Collector URL")
    } else if bad_url(&page.download_base) {
        Some("Download base")
    } else {
        None
    };
    if let Some(field) = bad_field {
        return refuse(
            page,
            format!("{field} must be an https:// address without spaces or quotes."),
        );
    }
    if page.project.is_empty() {
        return refuse(
            page,
            "A project is needed: it labels every VM enrolled with the token.".into(),
        );
    }
    let (_, token, expires) =
        match app.create_token(Some(&page.project), ttl, uses, &u.name, u.role) {
            Ok(t) => t,
            Err(AppError::Invalid(m)) | Err(AppError::Refused(m)) => {
                return refuse(page, format!("{m}."))
            }
            Err(e) => return Err(Failure::from(e).with_user(u)),
        };
    let fp = app.ca.fingerprint();
    let vars = [
        ("download_base", page.download_base.as_str()),
        ("install_sh_sha256", ""),
        ("collector_url", page.collector_url.as_str()),
        ("ca_fingerprint", fp.as_str()),
        ("enrollment_token", token.as_str()),
        ("terraform_project", page.project.as_str()),
        ("labels", ""),
        ("ssh_user", page.ssh_user.as_str()),
        ("ssh_public_key", ssh_key.as_str()),
    ];
    let mut user_data = Vec::new();
    for (id, name, text) in TEMPLATES {
        let text = render(text, &vars).map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cloud-init/{id}: {e}"),
            )
            .with_user(u)
        })?;
        user_data.push(UserData { id, name, text });
    }
    page.token = Some(token);
    page.expires = view::when(expires);
    page.user_data = user_data;
    Ok(view::html(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_like_templatefile() {
        assert_eq!(
            render("a ${x} b '${base64encode(x)}'", &[("x", "hé")]).unwrap(),
            "a hé b 'aMOp'"
        );
        assert!(render("${y}", &[("x", "1")])
            .unwrap_err()
            .contains("`${y}`"));
        assert!(render("${x", &[("x", "1")]).is_err());
        let vars = [
            ("download_base", "https://c:8443"),
            ("install_sh_sha256", ""),
            ("collector_url", "https://c:7443"),
            ("ca_fingerprint", "ab"),
            ("enrollment_token", "rpe_0123"),
            ("terraform_project", "web"),
            ("labels", ""),
            ("ssh_user", "ubuntu"),
            ("ssh_public_key", ""),
        ];
        for (id, _, text) in TEMPLATES {
            let out = render(text, &vars).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(
                out.starts_with("#cloud-config\n") && out.contains("rpe_0123"),
                "{id}"
            );
            assert!(!out.contains("${"), "{id}: nothing left unrendered");
        }
    }
}

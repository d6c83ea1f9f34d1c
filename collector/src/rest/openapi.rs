//! The API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! and the DTOs' `ToSchema`, served at `/api/v1/openapi.json`, and a page that shows
//! it at `/api/v1/docs` (self-contained: the document is embedded, nothing is loaded
//! from elsewhere). Neither needs a token: they are documentation.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rampart collector API",
        description = "Scans, reports, the handover gate, settings, agents, SSH targets, users and \
            enrollment tokens of a Rampart collector. Every `/api/v1` call but this \
            document carries `Authorization: Bearer <API token>`; a missing or unknown \
            token is 401, a role below the operation's is 403 (roles, from least to most \
            powerful: viewer, user, provisioner, admin). Errors are `{\"error\": \"...\"}`."
    ),
    paths(
        super::healthz,
        super::metrics,
        super::download,
        document,
        page,
        super::scans::list_scans,
        super::scans::manual_scan,
        super::scans::get_scan,
        super::reports::report_html,
        super::reports::report_json,
        super::reports::report_arf,
        super::scans::cancel,
        super::scans::release,
        super::scans::handover,
        super::overview::overview,
        super::settings::get_settings,
        super::settings::put_settings,
        super::agents::list_agents,
        super::agents::revoke_agent,
        super::agents::ca,
        super::targets::ssh_key,
        super::targets::register,
        super::targets::list,
        super::targets::get_target,
        super::targets::update,
        super::targets::remove,
        super::accounts::create_token,
        super::accounts::list_tokens,
        super::accounts::revoke_token,
        super::accounts::create_user,
        super::accounts::list_users,
        super::accounts::revoke_user,
        super::accounts::set_password,
        super::audit::audit,
        super::backup::backup,
        super::webhook::deliveries,
        super::ca_pem,
    ),
    components(schemas(ErrorBody)),
    modifiers(&CommonResponses),
    tags(
        (name = "scans", description = "Scans, their results and the overview"),
        (name = "reports", description = "Per-scan reports as downloads"),
        (name = "handover", description = "The handover gate and releases"),
        (name = "settings", description = "Policy settings"),
        (name = "agents", description = "Enrolled agents"),
        (name = "targets", description = "Targets scanned over SSH, without an agent, and the collector's SSH key"),
        (name = "enrollment", description = "Enrollment tokens and the CA agents pin"),
        (name = "users", description = "API users and their roles"),
        (name = "audit", description = "The append-only audit log"),
        (name = "operations", description = "Health, metrics, downloads, backups and this documentation"),
    )
)]
struct ApiDoc;

/// Adds the bearer scheme; to every operation that needs a token the answers every
/// such operation can give (401, 403, 503); to every operation with a path parameter
/// the 400 for one that is not UTF-8, and with a body the 413 for one over the limit.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A user's API token (`rpt_...`)"))
                    .build(),
            ),
        );
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let open = SecurityRequirement::default();
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let needs_token = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|r| *r != open));
                let has_path_param = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path);
                let answers = [
                    (needs_token, "401", "No token, or an unknown or revoked one"),
                    (
                        needs_token,
                        "403",
                        "The caller's role is below the operation's",
                    ),
                    (needs_token, "503", "Storage is unavailable"),
                    (has_path_param, "400", "A path parameter is not valid UTF-8"),
                    (
                        op.request_body.is_some(),
                        "413",
                        "The body is over the 2 MiB limit",
                    ),
                ];
                for (code, what) in answers.into_iter().filter(|a| a.0).map(|a| (a.1, a.2)) {
                    op.responses
                        .responses
                        .entry(code.into())
                        .or_insert_with(|| error(what).into());
                }
            }
        }
    }
}

/// The document, built once.
fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"))
    })
}

/// The OpenAPI document
///
/// This API's OpenAPI 3.1 document. No token needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The document", body = Object, content_type = "application/json")),
    security(())
)]
pub(super) async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}

const PAGE: &str = include_str!("docs.html");

/// The API documentation page
///
/// The document, readable in a browser; it loads nothing from elsewhere. No token
/// needed.
#[utoipa::path(
    get,
    path = "/api/v1/docs",
    tag = "operations",
    responses((status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8")),
    security(())
)]
pub(super) async fn page() -> Response {
    static HTML: OnceLock<String> = OnceLock::new();
    // Embedded as JSON in a script element: `<` escaped so that no string in the
    // document can close the element.
    let html =
        HTML.get_or_init(|| PAGE.replace("__OPENAPI_JSON__", &json().replace('<', "\\u003c")));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        html.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// (method, path) of every route of the API (`rest::api`, which `rest::router`
    /// merges with the console's), read from its source, so that a route added
    /// without documentation fails the test below.
    fn routes() -> BTreeSet<(String, String)> {
        let src = include_str!("../rest.rs");
        let start = src.find("\nfn api(").expect("rest::api");
        let body = &src[start..];
        let body = &body[..body.find("\n}\n").expect("end of router")];
        let mut out = BTreeSet::new();
        let mut rest = body;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            // The call's text, up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("closing parenthesis");
            let call = &rest[..end];
            let path = call.split('"').nth(1).expect("route path").to_string();
            let methods = &call[call.find(',').expect("method router")..];
            for m in ["get", "post", "put", "delete", "patch"] {
                let called = methods.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !methods.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && methods.as_bytes()[i - 1] != b'_'
                });
                if called {
                    out.insert((m.to_string(), path.clone()));
                }
            }
        }
        out
    }

    fn doc() -> Value {
        serde_json::from_str(super::json()).unwrap()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let routes = routes();
        assert!(routes.len() > 20, "the route reader found {routes:?}");
        assert!(routes.contains(&("delete".into(), "/api/v1/users/{name}".into())));
        let doc = doc();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        let undocumented: Vec<_> = routes.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes without #[utoipa::path] (or missing from ApiDoc's paths): {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routes).collect();
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn every_operation_states_its_answers() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let name = format!("{method} {path}");
                assert!(op["summary"].is_string(), "{name}: no summary");
                assert!(op["tags"].is_array(), "{name}: no tag");
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|k| k.starts_with('2')),
                    "{name}: no success answer"
                );
                let open = op["security"] == serde_json::json!([{}]);
                let secured = op["security"] == serde_json::json!([{"bearer": []}]);
                assert!(open || secured, "{name}: security {}", op["security"]);
                if secured {
                    for code in ["401", "403", "503"] {
                        assert!(responses.contains_key(code), "{name}: no {code}");
                    }
                    assert!(
                        path.starts_with("/api/v1/"),
                        "{name}: a token outside /api/v1"
                    );
                }
                for (code, r) in responses {
                    if !code.starts_with('2') {
                        assert_eq!(
                            r["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{name} {code}: errors have the error body"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_page_embeds_the_document_and_loads_nothing() {
        let page = super::PAGE.replace("__OPENAPI_JSON__", &super::json().replace('<', "\\u003c"));
        assert!(page.contains("\"/api/v1/users/{name}\""));
        let lower = page.to_ascii_lowercase();
        for bad in ["http:", "https:", "src=", "@import", "url("] {
            assert!(!lower.contains(bad), "the page must load nothing: {bad}");
        }
    }
}

//! Policy on verified identity: a project or the fleet can require one, and an agent
//! that only claimed an instance gives way to a verified one.

use super::*;

#[test]
fn a_project_or_the_fleet_can_require_a_verified_identity() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "require_verified_projects = [\"prod\"]\n");
    let rt = rt();
    let prod = c.enrollment_token("prod", 5, 3600);
    let dev = c.enrollment_token("dev", 5, 3600);
    // No document: refused for prod (the token's use kept), unverified for dev.
    let k = key();
    let st = enroll(&rt, &c, &prod, "aws", "i-0a", &k, None).unwrap_err();
    assert_eq!(st.code(), tonic::Code::PermissionDenied, "{st:?}");
    assert!(
        st.message()
            .contains("project prod requires a verified instance identity"),
        "{st:?}"
    );
    let id = enroll(&rt, &c, &dev, "aws", "i-0a", &k, None).unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], false);
    // A genuine document: accepted for prod.
    let k = key();
    let id = enroll(
        &rt,
        &c,
        &prod,
        "gcp",
        GCP_ID,
        &k,
        Some(good("gcp", GCP_ID, &k)),
    )
    .unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], true);
    // A VM that could not tell its instance ID takes the verified one.
    let k = key();
    let id = enroll(
        &rt,
        &c,
        &prod,
        "azure",
        "",
        &k,
        Some(good("azure", AZURE_ID, &k)),
    )
    .unwrap();
    let v = agent_json(&c, &id);
    assert_eq!(
        (v["identity_verified"].clone(), v["instance_id"].clone()),
        (json!(true), json!(AZURE_ID)),
        "{v}"
    );

    // A signer that writes BER (indefinite lengths, the content in chunks) verifies too.
    let k = key();
    let s = signers();
    let ber = s.azure_encoded(
        (&s.azure_signer, &s.azure_signer_key),
        Some(&s.azure_intermediate),
        &azure_content(
            "0b9d3c3e-0000-4000-8000-000000000001",
            &iid::azure_nonce(&k.hash),
            now(),
        ),
        true,
    );
    let id = enroll(
        &rt,
        &c,
        &prod,
        "azure",
        "0b9d3c3e-0000-4000-8000-000000000001",
        &k,
        Some(doc("azure", ber, vec![])),
    )
    .unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], true);

    // Without anchors for a provider its documents cannot be checked: unverified,
    // and so refused where verification is required.
    let t2 = tempfile::tempdir().unwrap();
    let bare = Collector::start_with(
        &t2.path().join("collector"),
        None,
        None,
        Some("[instance_identity]\nrequire_verified = true\n"),
    );
    let tok = bare.enrollment_token("dev", 5, 3600);
    let k = key();
    let st = enroll(
        &rt,
        &bare,
        &tok,
        "aws",
        AWS_ID,
        &k,
        Some(good("aws", AWS_ID, &k)),
    )
    .unwrap_err();
    assert_eq!(st.code(), tonic::Code::PermissionDenied, "{st:?}");
    assert!(
        st.message()
            .contains("a verified instance identity is required")
            && st.message().contains("no aws trust anchors are configured"),
        "{st:?}"
    );
}

#[test]
fn an_agent_that_only_claimed_an_instance_gives_way_to_a_verified_one() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let rt = rt();
    let tok = c.enrollment_token("web", 10, 3600);
    // A token holder enrolls first, claiming the AWS VM's instance ID.
    let squatter = enroll(&rt, &c, &tok, "aws", AWS_ID, &key(), None).unwrap();
    assert_eq!(agent_json(&c, &squatter)["identity_verified"], false);
    assert_eq!(
        c.admin("GET", &format!("/api/v1/handover/{AWS_ID}"), None)["agent_id"],
        squatter.as_str()
    );
    // A second mere claim is refused, as before.
    let st = enroll(&rt, &c, &tok, "aws", AWS_ID, &key(), None).unwrap_err();
    assert!(st.message().contains("already enrolled"), "{st:?}");
    // The VM itself, with the document AWS signed for it: the claim is revoked.
    let vm = key();
    let real = enroll(
        &rt,
        &c,
        &tok,
        "aws",
        AWS_ID,
        &vm,
        Some(good("aws", AWS_ID, &vm)),
    )
    .unwrap();
    let v = agent_json(&c, &real);
    assert_eq!(
        (v["identity_verified"].clone(), v["revoked"].clone()),
        (json!(true), json!(false)),
        "{v}"
    );
    assert_eq!(agent_json(&c, &squatter)["revoked"], true);
    let g = c.admin("GET", &format!("/api/v1/handover/{AWS_ID}"), None);
    assert_eq!(g["agent_id"], real.as_str(), "{g}");
    let log = c.admin("GET", "/api/v1/audit?per_page=50", None);
    assert!(
        log.to_string().contains("agent.supersede"),
        "the supersession is audited: {log}"
    );
    // A verified holder is never displaced, even by another verified enrollment.
    let other = key();
    let st = enroll(
        &rt,
        &c,
        &tok,
        "aws",
        AWS_ID,
        &other,
        Some(good("aws", AWS_ID, &other)),
    )
    .unwrap_err();
    assert!(st.message().contains("already enrolled"), "{st:?}");
    assert_eq!(agent_json(&c, &real)["revoked"], false);
}

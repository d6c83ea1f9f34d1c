//! Forged, foreign, stale, rebound, oversized, garbage and replayed documents are refused.

use super::*;

#[test]
fn forged_foreign_stale_rebound_oversized_and_garbage_documents_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let rt = rt();
    let s = signers();
    let pki = &s.pki;
    // Signers the collector does not trust.
    let rogue = pki.rsa_key("rogue");
    let rogue_root = pki.cert("rogue-root", &rogue, "Rogue Root", None, true, 30);
    let rogue_signer_key = pki.rsa_key("rogue-signer");
    let rogue_signer = pki.cert(
        "rogue-signer",
        &rogue_signer_key,
        "metadata.azure.com",
        Some((&rogue_root, &rogue)),
        false,
        30,
    );
    let self_signed = pki.cert(
        "self-signed",
        &rogue_signer_key,
        "metadata.azure.com",
        None,
        false,
        30,
    );
    // Chains to the configured root, but is not metadata.azure.com.
    let int_key = pki.dir.join("azure-int.key");
    let other_name = pki.cert(
        "other-name",
        &rogue_signer_key,
        "evil.example",
        Some((&s.azure_intermediate, &int_key)),
        false,
        30,
    );
    let k = key();
    let other = key();
    let aud = iid::gcp_audience(&k.hash);
    let nonce = iid::azure_nonce(&k.hash);
    let gcp = |key: &Path, kid: &str, claims: Value| doc("gcp", s.gcp(key, kid, &claims), vec![]);
    let azure = |signer: (&Path, &Path), chain: Option<&Path>, content: Value| {
        doc("azure", s.azure(signer, chain, &content), vec![])
    };
    let (aws_doc, aws_sig) = s.aws(&s.aws_key, AWS_ID);
    let good_jwt = s.gcp(&s.gcp_key, &s.gcp_kid, &gcp_claims(GCP_ID, &aud, now()));
    // The payload of a good token swapped for another instance's, signature kept.
    let forged_jwt = {
        let parts: Vec<&str> = good_jwt.split('.').collect();
        let claims = gcp_claims("999", &aud, now());
        format!(
            "{}.{}.{}",
            parts[0],
            rampart_tests::imds::b64url(claims.to_string().as_bytes()),
            parts[2]
        )
    };
    let signer = (s.azure_signer.as_path(), s.azure_signer_key.as_path());
    let chain = Some(s.azure_intermediate.as_path());
    let long_kid = "K".repeat(5000);
    // (case, claimed provider, claimed instance, document, words of the refusal)
    let cases: Vec<(&str, &str, &str, InstanceIdentityDocument, &str)> = vec![
        (
            "aws: forged (document edited after signing)",
            "aws",
            "i-0fffffffffffffff0",
            doc("aws", aws_doc.replace(AWS_ID, "i-0fffffffffffffff0"), aws_sig.clone()),
            "none of the configured AWS certificates",
        ),
        (
            "aws: signed by a key that is not configured",
            "aws",
            AWS_ID,
            {
                let (d, sig) = s.aws(&rogue, AWS_ID);
                doc("aws", d, sig)
            },
            "none of the configured AWS certificates",
        ),
        (
            "aws: another instance's document",
            "aws",
            "i-0mine00000000000",
            doc("aws", aws_doc.clone(), aws_sig.clone()),
            "is for instance i-0123456789abcdef0, not i-0mine00000000000",
        ),
        (
            "aws: document of another provider than claimed",
            "gcp",
            AWS_ID,
            doc("aws", aws_doc.clone(), aws_sig.clone()),
            "from aws but the enrollment claims gcp",
        ),
        (
            "gcp: forged payload",
            "gcp",
            "999",
            doc("gcp", forged_jwt, vec![]),
            "signature does not verify",
        ),
        (
            "gcp: rogue key under the configured kid",
            "gcp",
            GCP_ID,
            gcp(&rogue, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now())),
            "signature does not verify",
        ),
        (
            "gcp: a key that is not in the JWKS",
            "gcp",
            GCP_ID,
            gcp(&rogue, "rogue-kid", gcp_claims(GCP_ID, &aud, now())),
            "not in the configured JWKS",
        ),
        (
            "gcp: another instance's token",
            "gcp",
            "1111",
            gcp(&s.gcp_key, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now())),
            "is for instance 4520681940389672914, not 1111",
        ),
        (
            "gcp: audience of another key",
            "gcp",
            GCP_ID,
            gcp(
                &s.gcp_key,
                &s.gcp_kid,
                gcp_claims(GCP_ID, &iid::gcp_audience(&other.hash), now()),
            ),
            "bound to another key",
        ),
        (
            "gcp: expired",
            "gcp",
            GCP_ID,
            gcp(&s.gcp_key, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now() - 7200)),
            "stale",
        ),
        (
            "gcp: issued in the future",
            "gcp",
            GCP_ID,
            gcp(&s.gcp_key, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now() + 3600)),
            "in the future",
        ),
        (
            "gcp: a kid of 5000 bytes is quoted short",
            "gcp",
            GCP_ID,
            gcp(&rogue, &long_kid, gcp_claims(GCP_ID, &aud, now())),
            "not in the configured JWKS",
        ),
        (
            "azure: signer chaining to another root",
            "azure",
            AZURE_ID,
            azure(
                (&rogue_signer, &rogue_signer_key),
                Some(&rogue_root),
                azure_content(AZURE_ID, &nonce, now()),
            ),
            "no configured root vouches",
        ),
        (
            "azure: self-signed signer",
            "azure",
            AZURE_ID,
            azure(
                (&self_signed, &rogue_signer_key),
                None,
                azure_content(AZURE_ID, &nonce, now()),
            ),
            "no configured root vouches",
        ),
        (
            "azure: a signer of the right chain but another name",
            "azure",
            AZURE_ID,
            azure(
                (&other_name, &rogue_signer_key),
                chain,
                azure_content(AZURE_ID, &nonce, now()),
            ),
            "not metadata.azure.com",
        ),
        (
            "azure: nonce of another key",
            "azure",
            AZURE_ID,
            azure(
                signer,
                chain,
                azure_content(AZURE_ID, &iid::azure_nonce(&other.hash), now()),
            ),
            "bound to another key",
        ),
        (
            "azure: created two hours ago",
            "azure",
            AZURE_ID,
            azure(signer, chain, azure_content(AZURE_ID, &nonce, now() - 7200)),
            "stale",
        ),
        (
            "azure: another VM",
            "azure",
            "00000000-0000-0000-0000-000000000001",
            azure(signer, chain, azure_content(AZURE_ID, &nonce, now())),
            "is for instance",
        ),
        (
            "oversized document",
            "aws",
            AWS_ID,
            doc("aws", vec![b'{'; 13 * 1024], aws_sig.clone()),
            "the identity document is 13312 bytes; at most 12288",
        ),
        (
            "oversized signature",
            "aws",
            AWS_ID,
            doc("aws", aws_doc.clone(), vec![b'A'; 3000]),
            "signature is 3000 bytes; at most 2048",
        ),
        (
            "garbage aws signature",
            "aws",
            AWS_ID,
            doc("aws", aws_doc.clone(), b"\x00\x01not base64"),
            "unreadable identity document",
        ),
        (
            "garbage gcp token",
            "gcp",
            GCP_ID,
            doc("gcp", vec![0xff, 0xfe, 0x00, 0x2e], vec![]),
            "unreadable identity document",
        ),
        (
            "garbage azure document",
            "azure",
            AZURE_ID,
            doc(
                "azure",
                json!({"encoding": "pkcs7", "signature": rampart_tests::base64(&[0x30, 0x82, 0xff, 0xff, 1, 2, 3])}).to_string(),
                vec![],
            ),
            "PKCS#7",
        ),
        (
            "unknown provider",
            "ibm",
            "x",
            doc("ibm", "{}", vec![]),
            "provider `ibm` are not known",
        ),
    ];
    // One use only: no refusal may spend it.
    let tok = c.enrollment_token("web", 1, 3600);
    for (case, provider, instance, d, words) in cases {
        let st = enroll(&rt, &c, &tok, provider, instance, &k, Some(d)).unwrap_err();
        assert_eq!(st.code(), tonic::Code::InvalidArgument, "{case}: {st:?}");
        assert!(st.message().contains(words), "{case}: {}", st.message());
        assert!(st.message().len() < 400, "{case}: {}", st.message());
    }
    // Over the Enroll message bound: refused by the transport, nothing else hurt.
    let st = enroll(
        &rt,
        &c,
        &tok,
        "aws",
        AWS_ID,
        &k,
        Some(doc("aws", vec![b'x'; 64 * 1024], vec![])),
    )
    .unwrap_err();
    assert_ne!(st.code(), tonic::Code::Ok, "{st:?}");
    // Refusals are audited for the token, never echoing more than a short prefix.
    let audit = c.admin(
        "GET",
        "/api/v1/audit?action=enrollment.refused&per_page=100",
        None,
    );
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert!(entries.len() >= 20, "{audit}");
    for e in &entries {
        let d = e["detail"].as_str().unwrap_or_default();
        assert!(d.len() < 500, "{d}");
        assert!(!d.contains(&"K".repeat(100)), "{d}");
    }
    let m = rampart_tests::cluster::http_raw("GET", &c.rest, "/metrics", None).text();
    assert!(
        m.contains("rampart_enrollment_refusals_total{reason=\"identity_document\"}"),
        "{m}"
    );
    // The token's one use is intact: the genuine document enrolls, verified.
    let id = enroll(
        &rt,
        &c,
        &tok,
        "gcp",
        GCP_ID,
        &k,
        Some(good("gcp", GCP_ID, &k)),
    )
    .unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], true);
}

#[test]
fn a_document_cannot_be_replayed_for_another_key() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let rt = rt();
    let imds = Imds::start(signers(), instances(), false);
    let tok = c.enrollment_token("web", 20, 3600);
    for (provider, instance) in [("gcp", GCP_ID), ("azure", AZURE_ID), ("aws", AWS_ID)] {
        // The genuine VM fetches its document with the agent's own code.
        let vm = key();
        let fetched = rt
            .block_on(iid::fetch(
                provider,
                &imds.url(),
                &vm.hash,
                iid::FETCH_TIMEOUT,
            ))
            .unwrap();
        let captured = doc(provider, fetched.document, fetched.signature);
        let victim = enroll(
            &rt,
            &c,
            &tok,
            provider,
            instance,
            &vm,
            Some(captured.clone()),
        )
        .unwrap();
        assert_eq!(
            agent_json(&c, &victim)["identity_verified"],
            true,
            "{provider}"
        );
        // Someone who captured it replays it with their own key, claiming the VM.
        let thief = key();
        let st = enroll(
            &rt,
            &c,
            &tok,
            provider,
            instance,
            &thief,
            Some(captured.clone()),
        )
        .unwrap_err();
        if provider == "aws" {
            // AWS signs nothing of ours: only the instance's uniqueness stops it.
            assert_eq!(st.code(), tonic::Code::FailedPrecondition, "{st:?}");
            assert!(st.message().contains("already enrolled"), "{st:?}");
        } else {
            assert_eq!(
                st.code(),
                tonic::Code::InvalidArgument,
                "{provider}: {st:?}"
            );
            assert!(st.message().contains("bound to another key"), "{st:?}");
        }
        // Even once the victim is revoked, the replay proves nothing.
        c.admin("POST", &format!("/api/v1/agents/{victim}/revoke"), None);
        match enroll(&rt, &c, &tok, provider, instance, &thief, Some(captured)) {
            Err(st) => {
                assert_ne!(provider, "aws");
                assert!(st.message().contains("bound to another key"), "{st:?}");
            }
            Ok(thief_id) => {
                assert_eq!(provider, "aws", "only AWS documents can be replayed at all");
                let v = agent_json(&c, &thief_id);
                assert_eq!(v["identity_verified"], false, "{v}");
                assert!(
                    v["identity_detail"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("already enrolled agent {victim}")),
                    "{v}"
                );
                c.admin("POST", &format!("/api/v1/agents/{thief_id}/revoke"), None);
            }
        }
    }
}

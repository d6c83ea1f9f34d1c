//! Enrollment and certificate renewal: the only ways to obtain an agent identity.
//!
//! Enroll is reachable by anyone on the network, so the order matters: rate limits,
//! then sizes, then the CSR (its signature), then the token is looked at without
//! spending it; a use is spent only when everything else holds. A refusal for an
//! unknown token or a malformed request is counted and logged (a short prefix of
//! what was sent, never the whole), not written to the audit log: only refusals of a
//! real token are audited, so nobody without a token can grow the log.

use std::collections::BTreeMap;

use super::{App, AppError, Enrolled, Result};
use crate::auth;
use crate::ca::same_serial;
use crate::identity;
use crate::limits::{self, echo, EnrollClaims};
use crate::store::{AgentRecord, IdentityCheck, TokenRecord, TokenUse};

/// Why an enrollment was refused, for the refusal counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    RateLimited,
    Invalid,
    BadCsr,
    UnknownToken,
    TokenUnusable,
    InstanceTaken,
    /// A signed instance identity document was sent and did not verify.
    BadIdentity,
    /// The project (or the collector) requires a verified identity; there was none.
    UnverifiedIdentity,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::RateLimited,
        Refusal::Invalid,
        Refusal::BadCsr,
        Refusal::UnknownToken,
        Refusal::TokenUnusable,
        Refusal::InstanceTaken,
        Refusal::BadIdentity,
        Refusal::UnverifiedIdentity,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::Invalid => "invalid",
            Refusal::BadCsr => "bad_csr",
            Refusal::UnknownToken => "unknown_token",
            Refusal::TokenUnusable => "token_unusable",
            Refusal::InstanceTaken => "instance_taken",
            Refusal::BadIdentity => "identity_document",
            Refusal::UnverifiedIdentity => "identity_unverified",
        }
    }
}

/// The SHA-256 of the CSR's public key, once its signature is verified.
fn csr_key(csr_der: &[u8]) -> std::result::Result<String, String> {
    use x509_parser::prelude::FromDer;
    // rcgen verifies the CSR's self-signature.
    rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
        .map_err(|e| format!("invalid certificate signing request: {e}"))?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(csr_der)
        .map_err(|e| format!("invalid certificate signing request: {e}"))?;
    Ok(crate::ca::fingerprint(
        csr.certification_request_info.subject_pki.raw,
    ))
}

fn enroll_key(token_id: &str, key: &str) -> String {
    format!("enroll-key:{token_id}:{key}")
}

/// The meta key remembering which agent a verified identity document enrolled.
fn identity_document_key(doc: &identity::Document<'_>) -> String {
    format!(
        "identity-doc:{}",
        crate::ca::fingerprint(&[doc.provider.as_bytes(), b"\n", doc.document].concat())
    )
}

impl App {
    fn refuse_enroll(&self, why: Refusal, peer: &str, message: String) -> AppError {
        self.metrics.refusal(why);
        tracing::warn!(%peer, reason = why.as_str(), message = %message, "enrollment refused");
        match why {
            Refusal::RateLimited => AppError::Limited(message),
            Refusal::Invalid | Refusal::BadCsr | Refusal::BadIdentity => AppError::Invalid(message),
            Refusal::InstanceTaken => AppError::Conflict(message),
            _ => AppError::Refused(message),
        }
    }

    /// Enrolls an agent: a client certificate for the CSR's key, bound to a new agent
    /// ID, the token's project and the instance ID claimed now (never changed later).
    /// Retrying with the same token and the same key returns the same agent (a fresh
    /// certificate) without spending another use.
    pub fn enroll(&self, req: &EnrollClaims<'_>, peer_ip: &str) -> Result<Enrolled> {
        let lim = &self.config.limits;
        if !self.enroll_global.allow_share("", self.collectors()) {
            return Err(self.refuse_enroll(
                Refusal::RateLimited,
                peer_ip,
                format!(
                    "too many enrollments: at most {} per second are accepted; retry later",
                    lim.enroll_per_second
                ),
            ));
        }
        if !self
            .enroll_per_source
            .allow_share(peer_ip, self.collectors())
        {
            return Err(self.refuse_enroll(
                Refusal::RateLimited,
                peer_ip,
                format!(
                    "too many enrollments from {peer_ip}: at most {} per minute are accepted; retry later",
                    lim.enroll_per_source_per_minute
                ),
            ));
        }
        if let Err(e) = limits::enroll(req) {
            return Err(self.refuse_enroll(Refusal::Invalid, peer_ip, e.0));
        }
        let key =
            csr_key(req.csr_der).map_err(|m| self.refuse_enroll(Refusal::BadCsr, peer_ip, m))?;
        let hash = auth::hash_secret(req.token);
        let Some(tok) = self.store.token(&hash)? else {
            return Err(self.refuse_enroll(
                Refusal::UnknownToken,
                peer_ip,
                "unknown enrollment token".into(),
            ));
        };
        let now = self.clock.now_ms();
        let unusable = if tok.revoked {
            Some("enrollment token was revoked")
        } else if now >= tok.expires_at_ms {
            Some("enrollment token has expired")
        } else {
            None
        };
        if let Some(why) = unusable {
            return Err(self.refuse_known_token(&tok, why, req, peer_ip));
        }
        // A retry of an enrollment that succeeded (its answer lost): same agent.
        if let Some(agent_id) = self.store.get_meta(&enroll_key(&tok.id, &key))? {
            let agent_id = String::from_utf8_lossy(&agent_id).into_owned();
            return self.reissue(&agent_id, req.csr_der, peer_ip);
        }
        let (instance_id, identity) = self.check_identity(req, &key, &tok, peer_ip)?;
        // An agent that only claimed the instance gives way to one the provider
        // vouches for; any other holder keeps it.
        let mut superseded = None;
        if !instance_id.is_empty() {
            if let Some(other) = self.live_agent_with_instance(&instance_id)? {
                if identity.verified && !other.identity.verified {
                    superseded = Some(other);
                } else {
                    return Err(self.refuse_enroll(
                    Refusal::InstanceTaken,
                    peer_ip,
                    format!(
                        "instance {} is already enrolled as agent {}; an admin must revoke that agent first",
                        echo(&instance_id),
                        other.id
                    ),
                    ));
                }
            }
        }
        // Everything that can fail is done before the use is spent.
        let agent_id = auth::new_id("ag-")?;
        let tok = match self.store.use_token(&hash, now)? {
            TokenUse::Accepted(t) => t,
            TokenUse::Unknown => {
                return Err(self.refuse_enroll(
                    Refusal::UnknownToken,
                    peer_ip,
                    "unknown enrollment token".into(),
                ))
            }
            TokenUse::Expired => {
                return Err(self.refuse_known_token(
                    &tok,
                    "enrollment token has expired",
                    req,
                    peer_ip,
                ))
            }
            TokenUse::UsedUp => {
                return Err(self.refuse_known_token(
                    &tok,
                    "enrollment token has no uses left",
                    req,
                    peer_ip,
                ))
            }
            TokenUse::Revoked => {
                return Err(self.refuse_known_token(
                    &tok,
                    "enrollment token was revoked",
                    req,
                    peer_ip,
                ))
            }
        };
        if let Some(other) = &superseded {
            self.audit(
                "system",
                "agent.supersede",
                Some(&other.id),
                format!(
                    "instance {} enrolled with a verified identity as agent {agent_id}; agent {} had only claimed it",
                    echo(&instance_id),
                    other.id
                ),
            )?;
            self.revoke_agent(&other.id, "system")?;
        }
        let validity = time::Duration::days(self.config.agent_cert_days);
        let issued = self.ca.sign_agent(req.csr_der, &agent_id, validity)?;
        let not_after_ms = issued.not_after.unix_timestamp() * 1000;
        // The project comes from the token alone; labels are fixed here.
        let project = tok.project.clone();
        let record = AgentRecord {
            id: agent_id.clone(),
            hostname: req.hostname.into(),
            ip_addresses: vec![],
            provider: req.provider.into(),
            instance_id: instance_id.clone(),
            os: String::new(),
            project: project.clone(),
            labels: req.labels.clone(),
            enrolled_at_ms: now,
            last_seen_ms: now,
            cert_serial: issued.serial.clone(),
            cert_not_after_ms: not_after_ms,
            revoked: false,
            identity: identity.clone(),
            replaced_certs: Vec::new(),
            renewed_at_ms: 0,
            ssh: None,
        };
        self.store.put_agent(&record)?;
        self.hosts.note(&record);
        self.tell_others(crate::store::Event::Agent {
            agent_id: agent_id.clone(),
        });
        self.store
            .put_meta(&enroll_key(&tok.id, &key), agent_id.as_bytes())?;
        if let (true, Some(d)) = (identity.verified, &req.identity_document) {
            self.store
                .put_meta(&identity_document_key(d), agent_id.as_bytes())?;
        }
        self.audit(
            &format!("agent:{agent_id}"),
            "agent.enroll",
            Some(&agent_id),
            format!(
                "host {}, instance {}, project {:?}, token {}, from {peer_ip}; identity {}: {}",
                echo(req.hostname),
                echo(&instance_id),
                project,
                tok.id,
                if identity.verified {
                    "verified"
                } else {
                    "not verified"
                },
                identity.detail
            ),
        )?;
        self.metrics.enrollments_accepted.inc();
        let s = self.settings();
        let provision_scan = if s.scan_on_provision {
            self.create_scan(&agent_id, "provision", "system")?
                .map(|sc| sc.id)
        } else {
            None
        };
        self.sync_store()?;
        Ok(Enrolled {
            agent_id,
            cert_der: issued.der,
            not_after_ms,
            provision_scan,
        })
    }

    /// Checks the enrollment's signed instance identity document, if any: the
    /// instance ID to enroll (the document's when the agent claimed none) and the
    /// outcome. A document that is present and fails is refused (audited: only a
    /// token holder gets here), as is an unverified identity where the token's
    /// project, or the collector, requires a verified one. A document of a provider
    /// without configured anchors, or none at all, leaves the identity unverified.
    fn check_identity(
        &self,
        req: &EnrollClaims<'_>,
        key: &str,
        tok: &TokenRecord,
        peer_ip: &str,
    ) -> Result<(String, IdentityCheck)> {
        let unverified = match &req.identity_document {
            None => "no signed instance identity document was sent".to_string(),
            Some(d) => {
                let claim = identity::Claim {
                    provider: req.provider,
                    instance_id: req.instance_id,
                    key_sha256: key,
                };
                match identity::verify(&self.identity_anchors, d, &claim, self.clock.now_ms() / 1000) {
                    Ok(v) => match self.store.get_meta(&identity_document_key(d))? {
                        // AWS documents cannot be bound to a key: one already used
                        // by another enrollment proves nothing now.
                        Some(other) => format!(
                            "this identity document already enrolled agent {}; a reused document proves nothing",
                            echo(&String::from_utf8_lossy(&other))
                        ),
                        // The provider's spelling of the instance ID is kept (it
                        // equals the claim, or the claim was empty).
                        None => {
                            return Ok((
                                v.instance_id,
                                IdentityCheck {
                                    verified: true,
                                    detail: v.detail,
                                },
                            ));
                        }
                    },
                    Err(identity::Failure::NoAnchors(p)) => format!(
                        "a {p} identity document was sent, but no {p} trust anchors are configured"
                    ),
                    Err(f) => {
                        let why = format!("identity document refused: {f}");
                        return Err(self.refuse_audited(
                            tok,
                            Refusal::BadIdentity,
                            &why,
                            req,
                            peer_ip,
                        ));
                    }
                }
            }
        };
        let cfg = &self.config.instance_identity;
        if cfg.requires_verified(tok.project.as_deref()) {
            let why = match &tok.project {
                Some(p) if !cfg.require_verified => {
                    format!("project {p} requires a verified instance identity: {unverified}")
                }
                _ => format!("a verified instance identity is required: {unverified}"),
            };
            return Err(self.refuse_audited(tok, Refusal::UnverifiedIdentity, &why, req, peer_ip));
        }
        Ok((
            req.instance_id.to_string(),
            IdentityCheck {
                verified: false,
                detail: unverified,
            },
        ))
    }

    /// A refusal of a token that exists: audited (it names the token, never its
    /// secret), as only a token holder can cause one.
    fn refuse_known_token(
        &self,
        tok: &TokenRecord,
        why: &str,
        req: &EnrollClaims<'_>,
        peer_ip: &str,
    ) -> AppError {
        self.refuse_audited(tok, Refusal::TokenUnusable, why, req, peer_ip)
    }

    /// A refusal that names a known token: audited against it, then counted.
    fn refuse_audited(
        &self,
        tok: &TokenRecord,
        reason: Refusal,
        why: &str,
        req: &EnrollClaims<'_>,
        peer_ip: &str,
    ) -> AppError {
        let _ = self.audit(
            "system",
            "enrollment.refused",
            Some(&tok.id),
            format!("{why} (host {} from {peer_ip})", echo(req.hostname)),
        );
        let _ = self.sync_store();
        self.refuse_enroll(reason, peer_ip, why.into())
    }

    /// A fresh certificate for an agent whose enrollment is retried with its key.
    fn reissue(&self, agent_id: &str, csr_der: &[u8], peer_ip: &str) -> Result<Enrolled> {
        let a = self.agent(agent_id)?;
        if a.revoked {
            return Err(self.refuse_enroll(
                Refusal::TokenUnusable,
                peer_ip,
                format!("agent {agent_id} was revoked"),
            ));
        }
        let issued = self.ca.sign_agent(
            csr_der,
            agent_id,
            time::Duration::days(self.config.agent_cert_days),
        )?;
        let not_after_ms = issued.not_after.unix_timestamp() * 1000;
        let serial = issued.serial.clone();
        let mut old = (String::new(), 0);
        let written = self.store.update_agent(agent_id, &mut |a| {
            old = (a.cert_serial.clone(), a.cert_not_after_ms);
            if !a.revoked {
                a.cert_serial = serial.clone();
                a.cert_not_after_ms = not_after_ms;
            }
        })?;
        if written.is_none_or(|a| a.revoked) {
            return Err(AppError::Refused(format!("agent {agent_id} was revoked")));
        }
        self.supersede(&[old])?;
        self.audit(
            &format!("agent:{agent_id}"),
            "agent.reenroll",
            Some(agent_id),
            format!("enrollment retried with the same key from {peer_ip}; certificate reissued"),
        )?;
        self.sync_store()?;
        Ok(Enrolled {
            agent_id: agent_id.into(),
            cert_der: issued.der,
            not_after_ms,
            provision_scan: None,
        })
    }

    /// The live (not revoked) agent enrolled with this (non-empty) instance ID, if
    /// any: a look-up in the instance-ID index.
    pub fn live_agent_with_instance(&self, instance_id: &str) -> Result<Option<AgentRecord>> {
        Ok(self
            .store
            .agents_by_instance(instance_id)?
            .into_iter()
            .next())
    }

    /// Renews an agent's certificate from a new CSR sent over a stream authenticated
    /// with the certificate `presented` (its serial, hex): at most once per
    /// `limits.renew_interval_secs`, never for a revoked agent. The certificate the
    /// agent renewed with stays accepted until the agent is seen with its successor
    /// ([`App::seen_with`]): the answer may never reach it. Any other certificate the
    /// agent was issued is refused from now on.
    pub fn renew(&self, agent_id: &str, csr_der: &[u8], presented: &str) -> Result<(Vec<u8>, i64)> {
        self.ensure_live(agent_id)?;
        if csr_der.len() > limits::CSR_BYTES {
            return Err(AppError::Invalid(format!(
                "the CSR is {} bytes; at most {} are accepted",
                csr_der.len(),
                limits::CSR_BYTES
            )));
        }
        let limited = || {
            AppError::Limited(format!(
                "agent {agent_id} renewed its certificate less than {} s ago",
                self.config.limits.renew_interval_secs
            ))
        };
        if !self.renewals.allow(agent_id) {
            return Err(limited());
        }
        let now = self.clock.now_ms();
        let interval_ms = (self.config.limits.renew_interval_secs as i64).saturating_mul(1000);
        // A time ahead of this clock (another collector's) blocks nothing.
        let recent = |renewed_at_ms: i64| {
            renewed_at_ms > 0 && (0..interval_ms).contains(&(now - renewed_at_ms))
        };
        // A renewal through another collector sharing the store: refused before the
        // CA signs anything (the record decides again below, against a race).
        if self
            .store
            .agent(agent_id)?
            .is_some_and(|a| recent(a.renewed_at_ms))
        {
            return Err(limited());
        }
        let issued = self.ca.sign_agent(
            csr_der,
            agent_id,
            time::Duration::days(self.config.agent_cert_days),
        )?;
        let not_after_ms = issued.not_after.unix_timestamp() * 1000;
        let serial = issued.serial.clone();
        let mut old_serial = String::new();
        let mut old_not_after_ms = 0;
        // Another collector sharing the store may have renewed it: the record decides.
        let mut too_soon = false;
        let mut refused = Vec::new();
        let written = self.store.update_agent(agent_id, &mut |a| {
            refused.clear();
            old_serial = a.cert_serial.clone();
            old_not_after_ms = a.cert_not_after_ms;
            too_soon = recent(a.renewed_at_ms);
            if !a.revoked && !too_soon {
                a.renewed_at_ms = now;
                // Replaced certificates are refused by every collector sharing the
                // store until they expire; all but the one this request came with
                // from now on (one whose renewal answer was lost, say).
                a.replaced_certs.retain(|c| c.not_after_ms > now);
                for c in a.replaced_certs.iter_mut() {
                    if !c.refused && !same_serial(&c.serial, presented) {
                        c.refused = true;
                        refused.push((c.serial.clone(), c.not_after_ms));
                    }
                }
                if !a.cert_serial.is_empty() && a.cert_not_after_ms > now {
                    let in_use = same_serial(&a.cert_serial, presented);
                    a.replaced_certs.push(crate::store::ReplacedCert {
                        serial: a.cert_serial.clone(),
                        not_after_ms: a.cert_not_after_ms,
                        refused: !in_use,
                    });
                    if !in_use {
                        refused.push((a.cert_serial.clone(), a.cert_not_after_ms));
                    }
                }
                a.cert_serial = serial.clone();
                a.cert_not_after_ms = not_after_ms;
            }
        })?;
        match written {
            None => return Err(AppError::NotFound(format!("agent {agent_id}"))),
            Some(a) if a.revoked => {
                return Err(AppError::Refused(format!("agent {agent_id} is revoked")))
            }
            Some(_) if too_soon => return Err(limited()),
            Some(_) => {}
        }
        self.audit(
            &format!("agent:{agent_id}"),
            "agent.renew",
            Some(agent_id),
            format!("client certificate renewed (serial {old_serial} replaced by {serial})"),
        )?;
        self.sync_store()?;
        self.supersede(&refused)?;
        Ok((issued.der, not_after_ms))
    }

    /// The agent opened a stream with the certificate `serial` (hex): when that is
    /// the one it was last issued, the certificates it replaced, kept in case the
    /// renewal's answer was lost, go on the CRL.
    pub fn seen_with(&self, agent: &AgentRecord, serial: &str) -> Result<()> {
        if !same_serial(&agent.cert_serial, serial)
            || agent.replaced_certs.iter().all(|c| c.refused)
        {
            return Ok(());
        }
        let mut refused = Vec::new();
        self.store.update_agent(&agent.id, &mut |a| {
            refused.clear();
            if !same_serial(&a.cert_serial, serial) {
                return;
            }
            for c in a.replaced_certs.iter_mut().filter(|c| !c.refused) {
                c.refused = true;
                refused.push((c.serial.clone(), c.not_after_ms));
            }
        })?;
        self.sync_store()?;
        self.supersede(&refused)
    }

    /// Puts replaced certificates (serial, not after) on the CRL and rebuilds the TLS
    /// layer's view, here and on every collector sharing the store.
    fn supersede(&self, certs: &[(String, i64)]) -> Result<()> {
        let certs: Vec<_> = certs.iter().filter(|(s, _)| !s.is_empty()).collect();
        if certs.is_empty() {
            return Ok(());
        }
        for (serial, not_after_ms) in certs {
            self.ca.supersede(serial, not_after_ms / 1000)?;
        }
        self.revocations_changed();
        self.tell_others(crate::store::Event::Crl);
        Ok(())
    }
}

/// The labels of an Enroll request as a map (the first of a repeated key wins).
pub fn labels_of(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in pairs {
        m.entry(k).or_insert(v);
    }
    m
}

//! Roles and secrets of the REST API. Tokens are random, shown once, and stored
//! only as their SHA-256.

use ring::rand::SecureRandom;

/// A caller's role (SPEC §4), ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    User,
    Provisioner,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "user" => Role::User,
            "provisioner" => Role::Provisioner,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::User => "user",
            Role::Provisioner => "provisioner",
            Role::Admin => "admin",
        }
    }
}

/// A new random secret with a readable prefix, e.g. `rpt_…` for API tokens.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 24];
    // SystemRandom only fails when the OS has no entropy source at all.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// A short random identifier.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// SHA-256 of a secret, hex: what is stored.
pub fn hash_secret(secret: &str) -> String {
    crate::ca::fingerprint(secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_secrets() {
        assert!(
            Role::Admin > Role::Provisioner
                && Role::Provisioner > Role::User
                && Role::User > Role::Viewer
        );
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
        let a = new_secret("rpt_");
        assert!(a.starts_with("rpt_") && a.len() == 52);
        assert_ne!(a, new_secret("rpt_"));
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), a);
    }
}

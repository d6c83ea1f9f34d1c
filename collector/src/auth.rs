//! Roles and secrets of the REST API. Tokens are random, shown once, and stored
//! only as their SHA-256. Every random value (token, identifier, certificate serial)
//! comes from [`RandomSource`]; when the system's generator fails, nothing is issued:
//! the caller gets [`RandomError`] (503 / UNAVAILABLE), never zeroed or partial bytes.

/// The random number generator failed; no secret or identifier was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system's random number generator failed; nothing was issued, try again later")]
pub struct RandomError;

impl From<RandomError> for crate::app::AppError {
    fn from(e: RandomError) -> Self {
        crate::app::AppError::Unavailable(e.to_string())
    }
}

/// Where random bytes come from: the system's generator in production, a failing
/// one in tests. (ring's `SecureRandom` is sealed, so it cannot be faked.)
pub trait RandomSource: Sync {
    /// Fills all of `buf`, or fails: a failure leaves no usable bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

impl RandomSource for ring::rand::SystemRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        ring::rand::SecureRandom::fill(self, buf).map_err(|_| RandomError)
    }
}

/// The operating system's generator (getrandom).
pub fn system_random() -> &'static dyn RandomSource {
    static RNG: std::sync::OnceLock<ring::rand::SystemRandom> = std::sync::OnceLock::new();
    RNG.get_or_init(ring::rand::SystemRandom::new)
}

/// `n` random bytes from `rng`, or the error: never a half-filled buffer.
pub fn random_bytes<const N: usize>(rng: &dyn RandomSource) -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    rng.fill(&mut b)?;
    Ok(b)
}

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
pub fn new_secret(prefix: &str) -> Result<String, RandomError> {
    secret_from(system_random(), prefix)
}

/// A short random identifier.
pub fn new_id(prefix: &str) -> Result<String, RandomError> {
    id_from(system_random(), prefix)
}

fn secret_from(rng: &dyn RandomSource, prefix: &str) -> Result<String, RandomError> {
    Ok(format!("{prefix}{}", hex(&random_bytes::<24>(rng)?)))
}

fn id_from(rng: &dyn RandomSource, prefix: &str) -> Result<String, RandomError> {
    Ok(format!("{prefix}{}", hex(&random_bytes::<8>(rng)?)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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
        let a = new_secret("rpt_").unwrap();
        assert!(a.starts_with("rpt_") && a.len() == 52);
        assert_ne!(a, new_secret("rpt_").unwrap());
        let id = new_id("ag-").unwrap();
        assert!(id.starts_with("ag-") && id.len() == 19, "{id}");
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), a);
    }

    /// Fails after writing zeros into part of the buffer, as a broken source might.
    struct Broken;
    impl RandomSource for Broken {
        fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
            let half = buf.len() / 2;
            buf[..half].fill(0);
            Err(RandomError)
        }
    }

    #[test]
    fn a_failing_generator_issues_nothing() {
        assert_eq!(secret_from(&Broken, "rpt_"), Err(RandomError));
        assert_eq!(id_from(&Broken, "ag-"), Err(RandomError));
        assert_eq!(random_bytes::<16>(&Broken), Err(RandomError));
        // The error reaches callers as "unavailable" (HTTP 503, gRPC UNAVAILABLE).
        let e = crate::app::AppError::from(RandomError);
        assert!(
            matches!(&e, crate::app::AppError::Unavailable(m) if m.contains("random number generator")),
            "{e:?}"
        );
    }
}

//! Password hashes: Argon2id in PHC string form, shared by every protocol
//! that logs users in. Plain passwords are never stored or logged.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

pub fn verify(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_and_verify() {
        let h = super::hash("rahasia").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify(&h, "rahasia"));
        assert!(!super::verify(&h, "salah"));
        assert!(!super::verify("garbage", "rahasia"));
    }
}

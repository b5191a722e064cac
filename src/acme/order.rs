//! One certificate order (RFC 8555 §7.4): the account (made once and kept
//! under `data_dir/acme`), the authorizations answered by the chosen
//! challenge, the CSR for a fresh key, and the issued chain.

use super::challenges::Challenges;
use crate::config::Config;
use crate::config::acme::Challenge;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What the authority issued: the chain (leaf first) and its key, PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// The account file: the credentials and the directory they belong to (a
/// new directory means a new account).
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

fn account_path(config: &Config) -> PathBuf {
    super::state_dir(&config.data_dir).join("account.json")
}

/// Runs one order for `names` to its end; every failure is a sentence for
/// the log.
pub async fn obtain(
    config: &Config,
    names: &[String],
    challenges: &Challenges,
) -> Result<Issued, String> {
    let dir = super::state_dir(&config.data_dir);
    crate::perms::private_dir(&dir, 0o700).map_err(|e| format!("{}: {e}", dir.display()))?;
    let account = account(config).await?;
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let result = validate_and_finalize(config, names, &mut order, challenges).await;
    challenges.clear();
    result
}

async fn validate_and_finalize(
    config: &Config,
    names: &[String],
    order: &mut instant_acme::Order,
    challenges: &Challenges,
) -> Result<Issued, String> {
    let kind = match config.acme.challenge {
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(format!(
                    "authorization for {} is {other:?}",
                    authorization.identifier()
                ));
            }
        }
        let name = authorization.identifier().to_string();
        let Some(mut challenge) = authorization.challenge(kind.clone()) else {
            return Err(format!(
                "the authority offers no {} challenge for {name}",
                config.acme.challenge.as_str()
            ));
        };
        let key_authorization = challenge.key_authorization();
        match config.acme.challenge {
            Challenge::Http01 => {
                challenges.publish_http(&challenge.token, key_authorization.as_str())
            }
            Challenge::TlsAlpn01 => {
                challenges.publish_tls_alpn(&name, key_authorization.digest().as_ref())?
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("challenge for {name}: {e}"))?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .timeout(config.acme.order_timeout.0);
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(why_invalid(order, status).await);
    }
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| format!("CSR: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    // ECDSA P-256: what every client of the last decade accepts, and
    // cheaper handshakes than RSA.
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key: {e}"))?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| format!("CSR: {e}"))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| format!("waiting for the certificate: {e}"))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// The authority's reason an order failed: the first challenge error of
/// its authorizations, which names the name and what was seen.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                return format!(
                    "validation of {} failed: {problem}",
                    authorization.identifier()
                );
            }
        }
    }
    format!("the order is {status:?}")
}

/// The stored account for this directory, or a new one (saved at once).
async fn account(config: &Config) -> Result<Account, String> {
    let directory = config.acme.directory_url().to_string();
    let path = account_path(config);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(stored) = serde_json::from_str::<StoredAccount>(&text)
        && stored.directory == directory
    {
        return builder(config)?
            .from_credentials(stored.credentials)
            .await
            .map_err(|e| format!("account: {e}"));
    }
    let contact: Vec<String> = config
        .acme
        .contact
        .iter()
        .map(|c| {
            if c.starts_with("mailto:") {
                c.clone()
            } else {
                format!("mailto:{c}")
            }
        })
        .collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(config)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("new account at {directory}: {e}"))?;
    let stored = StoredAccount {
        directory,
        credentials,
    };
    let text = serde_json::to_string(&stored).map_err(|e| format!("account: {e}"))?;
    crate::perms::write_private_file(&path, text.as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tracing::info!("acme: registered an account at {}", stored.directory);
    Ok(account)
}

fn builder(config: &Config) -> Result<instant_acme::AccountBuilder, String> {
    let built = if config.acme.ca_file.is_empty() {
        Account::builder()
    } else {
        Account::builder_with_root(&config.acme.ca_file)
    };
    built.map_err(|e| format!("HTTPS client: {e}"))
}

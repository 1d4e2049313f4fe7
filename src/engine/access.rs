//! API keys: authentication from an in-memory cache, key management, the
//! first admin key, and the facts the scope check reads.
//!
//! Every call authenticates, RecordAttempts included at more than 10k calls
//! per second, so keys live in memory: one read lock, one hash lookup, one
//! SHA-256 of the secret and a constant-time compare (about a microsecond,
//! see `benches/ingest.rs`). Keys change only through this module, which
//! writes the store and the cache under one mutex.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;

use super::Engine;
use crate::clock::now_micros;
use crate::domain::access::{ApiKey, CohortFacts, Principal, Resource, Role, Scope, ScopeFacts};
use crate::domain::reports::CohortReport;
use crate::error::{Error, Result};
use crate::store::Store;

/// Prefix of every token: `spoc_<key id>_<secret>`.
pub const TOKEN_PREFIX: &str = "spoc_";
/// Random bytes in a key id (printed as hex).
const KEY_ID_BYTES: usize = 8;
/// Random bytes in a secret (printed as hex): 256 bits, so a plain SHA-256
/// is enough to store it (no password stretching needed).
const SECRET_BYTES: usize = 32;
/// File name of the first admin key under the data folder.
pub const ADMIN_KEY_FILE: &str = "admin-key";

/// An active key as the hot path needs it.
struct CachedKey {
    secret_hash: [u8; 32],
    principal: Arc<Principal>,
}

/// The active keys by id, and the lock that serializes key writes.
pub struct AccessKeys {
    active: RwLock<HashMap<String, CachedKey>>,
    write: Mutex<()>,
}

impl AccessKeys {
    /// Loads the active keys of the store.
    pub fn load(store: &Store) -> Result<Self> {
        let keys = Self {
            active: RwLock::new(HashMap::new()),
            write: Mutex::new(()),
        };
        for key in store.api_keys()? {
            keys.remember(&key);
        }
        Ok(keys)
    }

    /// Puts an active key in the cache, or drops a revoked one from it.
    fn remember(&self, key: &ApiKey) {
        let mut active = self.active.write();
        if key.revoked_at.is_some() {
            active.remove(&key.id);
            return;
        }
        active.insert(
            key.id.clone(),
            CachedKey {
                secret_hash: key.secret_hash,
                principal: Arc::new(Principal {
                    key_id: key.id.clone(),
                    name: key.name.clone(),
                    role: key.role,
                    scope: key.scope.clone(),
                }),
            },
        );
    }
}

/// Splits `spoc_<key id>_<secret>`; `None` for anything else.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let hex =
        |s: &str, bytes: usize| s.len() == 2 * bytes && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, KEY_ID_BYTES) && hex(secret, SECRET_BYTES)).then_some((id, secret))
}

fn hash(secret: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::Storage("the system random generator failed".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new key record and its token (the only time the secret exists).
fn new_key(name: &str, role: Role, scope: Scope) -> Result<(ApiKey, String)> {
    let id = random_hex(KEY_ID_BYTES)?;
    let secret = random_hex(SECRET_BYTES)?;
    let key = ApiKey {
        id: id.clone(),
        name: name.to_string(),
        role,
        scope,
        secret_hash: hash(&secret),
        created_at: now_micros(),
        revoked_at: None,
    };
    Ok((key, format!("{TOKEN_PREFIX}{id}_{secret}")))
}

fn unauthenticated() -> Error {
    // One message for a malformed, unknown or revoked key: no oracle.
    Error::Unauthenticated("missing, unknown or revoked API key".into())
}

impl Engine {
    /// The caller behind a token (`spoc_<key id>_<secret>`, without the
    /// `Bearer ` prefix): UNAUTHENTICATED if it is malformed, unknown or
    /// revoked. Shared with the xAPI HTTP listener.
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        self.authenticate_shared(token).map(Arc::unwrap_or_clone)
    }

    /// [`Engine::authenticate`] without copying the principal (the gRPC
    /// hot path).
    pub fn authenticate_shared(&self, token: &str) -> Result<Arc<Principal>> {
        let (id, secret) = split_token(token).ok_or_else(unauthenticated)?;
        let active = self.access.active.read();
        let key = active.get(id).ok_or_else(unauthenticated)?;
        if bool::from(key.secret_hash.ct_eq(&hash(secret))) {
            Ok(key.principal.clone())
        } else {
            Err(unauthenticated())
        }
    }

    /// Whether the key `key_id` is still active: a long-lived stream (an
    /// alert watch) stops serving a key revoked after it started.
    pub fn key_is_active(&self, key_id: &str) -> bool {
        self.access.active.read().contains_key(key_id)
    }

    /// Creates a key; returns it and its token, once the key is on disk (a
    /// token handed out is never lost to a crash). The scope must fit the
    /// role (INVALID_ARGUMENT otherwise).
    pub async fn create_api_key(
        &self,
        name: &str,
        role: Role,
        scope: Scope,
    ) -> Result<(ApiKey, String)> {
        Scope::check_for(role, &scope)?;
        let (key, token) = new_key(name, role, scope)?;
        {
            let _write = self.access.write.lock();
            self.store.put_api_key(&key)?;
            self.access.remember(&key);
        }
        tracing::info!(key_id = %key.id, role = role.name(), "API key created");
        self.store.durable().await?;
        Ok((key, token))
    }

    /// Revokes a key at once (the cache forgets it before this returns) and
    /// on disk. Refuses to revoke the last active admin key, which would
    /// lock every administrator out.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKey> {
        let key = self.revoke_locked(id)?;
        self.store.durable().await?;
        Ok(key)
    }

    /// [`Engine::revoke_api_key`] under the key write lock, before the wait
    /// for the disk.
    fn revoke_locked(&self, id: &str) -> Result<ApiKey> {
        let _write = self.access.write.lock();
        let mut key = self
            .store
            .api_key(id)?
            .ok_or_else(|| Error::not_found("api key", id))?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        if key.role == Role::Admin {
            let admins = self
                .access
                .active
                .read()
                .values()
                .filter(|k| k.principal.role == Role::Admin)
                .count();
            if admins <= 1 {
                return Err(Error::FailedPrecondition(format!(
                    "api key '{id}' is the last active admin key: create another admin key first"
                )));
            }
        }
        key.revoked_at = Some(now_micros());
        self.store.put_api_key(&key)?;
        self.access.remember(&key);
        tracing::info!(key_id = %key.id, "API key revoked");
        Ok(key)
    }

    /// Every key, revoked ones included, in id order.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.store.api_keys()
    }

    /// On a store that never had a key: creates an admin key, writes its
    /// token to `data_dir/admin-key` (mode 0600) and returns that path.
    /// Afterwards, never again (a marker in the store says so, even if the
    /// file is deleted): returns `None`.
    pub fn bootstrap_admin_key(&self, data_dir: &Path) -> Result<Option<PathBuf>> {
        let _write = self.access.write.lock();
        if self.store.admin_key_bootstrapped()? || !self.store.api_keys()?.is_empty() {
            return Ok(None);
        }
        let (key, token) = new_key("first admin key", Role::Admin, Scope::All)?;
        let path = data_dir.join(ADMIN_KEY_FILE);
        // The file first: if the commit fails, the next start overwrites it
        // with a new key; the other way round, a crash could store a key
        // nobody ever saw.
        write_secret(&path, &format!("{token}\n"))?;
        self.store.put_first_admin_key(&key, now_micros())?;
        self.access.remember(&key);
        Ok(Some(path))
    }

    /// Whether `who` may see a row about `learner` in `cohort` (a listed
    /// alert, a streamed alert change).
    pub fn sees_row(&self, who: &Principal, learner: &str, cohort: &str) -> Result<bool> {
        who.sees(Resource::Row { learner, cohort }, self)
    }

    /// The rows of `rows` that `who` may see; `subject` names the learner
    /// and cohort of a row.
    pub fn visible<T>(
        &self,
        who: &Principal,
        rows: Vec<T>,
        subject: fn(&T) -> (&str, &str),
    ) -> Result<Vec<T>> {
        if !who.is_scoped() {
            return Ok(rows);
        }
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            let (learner, cohort) = subject(&row);
            if self.sees_row(who, learner, cohort)? {
                kept.push(row);
            }
        }
        Ok(kept)
    }

    /// A cohort report as `who` may see it: a company key gets the
    /// aggregates with none of another company's learners in the lists.
    pub fn cohort_report_for(
        &self,
        who: &Principal,
        cohort_id: &str,
        program_id: Option<&str>,
    ) -> Result<CohortReport> {
        let mut report = self.cohort_report(cohort_id, program_id)?;
        if let Scope::Company(company) = &who.scope {
            let mut kept = Vec::with_capacity(report.certified.len());
            for certified in report.certified {
                if self.learner_company(&certified.learner_id)?.as_deref() == Some(company) {
                    kept.push(certified);
                }
            }
            report.certified = kept;
        }
        Ok(report)
    }

    /// A program report as `who` may see it: a company key gets the report
    /// of its own employees in the program, nobody else counted.
    pub fn program_report_for(&self, who: &Principal, program_id: &str) -> Result<CohortReport> {
        match &who.scope {
            Scope::Company(company) => self.program_report_of(program_id, &|learner| {
                Ok(self.learner_company(learner)?.as_deref() == Some(company.as_str()))
            }),
            _ => self.program_report(program_id),
        }
    }
}

/// Writes a secret file readable by its owner only, and syncs it.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let fail = |e: std::io::Error| Error::Storage(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    // A file left by an earlier attempt keeps its mode: set it again.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

impl ScopeFacts for Engine {
    fn learner_company(&self, learner: &str) -> Result<Option<String>> {
        Ok(self.store.learner(learner)?.map(|l| l.company_id))
    }

    fn cohort(&self, cohort: &str) -> Result<Option<CohortFacts>> {
        Ok(self.store.cohort(cohort)?.map(|c| CohortFacts {
            program_id: c.program_id,
            members: c.members,
        }))
    }

    fn program_has_company(&self, program: &str, company: &str) -> Result<bool> {
        let (enrolments, _) = self.store.program_enrolments(program, None, usize::MAX)?;
        for enrolment in enrolments {
            if self.learner_company(&enrolment.learner_id)?.as_deref() == Some(company) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn alert_subject(&self, alert: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .store
            .alert(alert)?
            .map(|a| (a.learner_id, a.cohort_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_only_in_the_documented_shape() {
        let id = "0123456789abcdef";
        let secret = "ab".repeat(SECRET_BYTES);
        let token = format!("spoc_{id}_{secret}");
        assert_eq!(split_token(&token), Some((id, secret.as_str())));
        assert_eq!(split_token(&format!("spoc_{id}_{secret}0")), None);
        assert_eq!(split_token(&format!("spoc_{id}x_{secret}")), None);
        assert_eq!(split_token(&format!("{id}_{secret}")), None);
        assert_eq!(split_token(&format!("spoc_{id}_zz{}", &secret[2..])), None);
        assert_eq!(split_token(""), None);
    }

    #[test]
    fn new_keys_hash_their_secret_and_differ() {
        let (a, token_a) = new_key("a", Role::Lms, Scope::All).unwrap();
        let (b, token_b) = new_key("b", Role::Lms, Scope::All).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(token_a, token_b);
        let (id, secret) = split_token(&token_a).unwrap();
        assert_eq!(id, a.id);
        assert_eq!(hash(secret), a.secret_hash);
        assert!(!token_a.contains(&format!("{:?}", a.secret_hash)));
    }
}

//! The launched PostgreSQL standing in for a cloud's token check.
//!
//! A managed database accepts any unexpired token its identity service issued. A launched
//! server can only hold one password per role, so the tests make each newly issued token the
//! role's password the moment it is issued ([`RoleRotator::hook`] is an emulator's `on_issue`
//! hook): the previous token stops working, which is harsher than the cloud (where it stays
//! valid until it expires) and so proves more. The `ALTER ROLE` runs on one superuser
//! connection owned by a thread of its own, and the hook returns only once it is committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

#[cfg(feature = "gcp")]
use super::emulators::gcp_token::OAuthTokenEmulator;
use super::launcher::PgServer;
#[cfg(feature = "gcp")]
use crate::iam::gcp::{CloudSqlTokenProvider, CloudSqlTokenProviderBuilder, GcpTokenPolicy};
#[cfg(feature = "gcp")]
use std::time::Duration;

type Request = (String, mpsc::Sender<Result<(), String>>);

/// Sets a role's password on request, synchronously, over one admin connection.
pub struct RoleRotator {
    role: String,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    rotations: AtomicU64,
    failures: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RoleRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleRotator")
            .field("role", &self.role)
            .field("rotations", &self.rotations())
            .finish_non_exhaustive()
    }
}

/// `name` as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl RoleRotator {
    /// Creates `role` (LOGIN, no password yet) on `server` if it does not exist, and opens the
    /// admin connection (over the server's unix socket, as its superuser).
    pub fn start(server: &PgServer, role: &str) -> Result<Arc<Self>, String> {
        server
            .admin_sql(&format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN \
                 CREATE ROLE {} LOGIN; END IF; END $$;",
                literal(role),
                ident(role)
            ))
            .map_err(|e| format!("cannot create role {role}: {e}"))?;
        let config = server.superuser_config();
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("role-rotator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let client = match config.connect(tokio_postgres::NoTls).await {
                        Ok((client, connection)) => {
                            tokio::spawn(connection);
                            let _ = ready_tx.send(Ok(()));
                            client
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("admin connection: {e}")));
                            return;
                        }
                    };
                    while let Ok((sql, reply)) = rx.recv() {
                        let result = client
                            .batch_execute(&sql)
                            .await
                            .map_err(|e| format!("ALTER ROLE failed: {e}"));
                        let _ = reply.send(result);
                    }
                });
            })
            .map_err(|e| format!("cannot start the rotator thread: {e}"))?;
        ready_rx
            .recv()
            .map_err(|_| "the rotator thread ended".to_string())??;
        Ok(Arc::new(Self {
            role: role.to_string(),
            requests: Mutex::new(Some(tx)),
            rotations: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Makes `password` the role's password; returns once the change is committed.
    pub fn set(&self, password: &str) -> Result<(), String> {
        let sql = format!(
            "ALTER ROLE {} PASSWORD {}",
            ident(&self.role),
            literal(password)
        );
        let (reply_tx, reply_rx) = mpsc::channel();
        let sent = self
            .requests
            .lock()
            .map_err(|_| "rotator lock poisoned".to_string())?
            .as_ref()
            .map(|tx| tx.send((sql, reply_tx)).is_ok())
            .unwrap_or(false);
        let result = if sent {
            reply_rx
                .recv()
                .unwrap_or_else(|_| Err("the rotator thread ended".to_string()))
        } else {
            Err("the rotator is stopped".to_string())
        };
        match &result {
            Ok(()) => self.rotations.fetch_add(1, Ordering::SeqCst),
            Err(_) => self.failures.fetch_add(1, Ordering::SeqCst),
        };
        result
    }

    /// A hook for an emulator's `on_issue`: every issued token becomes the password.
    pub fn hook(self: &Arc<Self>) -> Arc<dyn Fn(&str) + Send + Sync> {
        let this = Arc::clone(self);
        Arc::new(move |token: &str| {
            // A failure is counted (see `failures`); the login with that token then fails,
            // which the test sees.
            let _ = this.set(token);
        })
    }

    /// Passwords set so far.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::SeqCst)
    }

    /// `ALTER ROLE`s that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The role.
    pub fn role(&self) -> &str {
        &self.role
    }
}

impl Drop for RoleRotator {
    fn drop(&mut self) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(thread) = thread.take()
        {
            let _ = thread.join();
        }
    }
}

/// A Cloud SQL IAM token issuer whose every token becomes its role's password: the OAuth token
/// endpoint emulator, a service-account key of its own, and a [`RoleRotator`] on the
/// emulator's `on_issue` hook. The real [`CloudSqlTokenProvider`] fetches from it.
#[cfg(feature = "gcp")]
pub struct RotatingIssuer {
    /// The token endpoint.
    pub emulator: OAuthTokenEmulator,
    /// Makes each issued token the role's password.
    pub rotator: Arc<RoleRotator>,
    /// The service account's email.
    pub email: String,
    private_key: String,
}

#[cfg(feature = "gcp")]
impl std::fmt::Debug for RotatingIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingIssuer")
            .field("email", &self.email)
            .field("rotator", &self.rotator)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "gcp")]
impl RotatingIssuer {
    /// Creates the database role of service account `email` on `server` (Cloud SQL's name for
    /// it, [`crate::provider::gcp::iam_user`]), a fresh RSA key for the account, and an
    /// emulator issuing tokens that live `expires_in_secs`, each made the role's password
    /// before it is handed out.
    pub async fn start(
        server: &PgServer,
        email: &str,
        expires_in_secs: i64,
    ) -> Result<Self, String> {
        let rotator = RoleRotator::start(server, crate::provider::gcp::iam_user(email))?;
        let private_key = super::certs::rsa_key()?;
        let emulator = OAuthTokenEmulator::start().await;
        emulator.set_expires_in(expires_in_secs);
        emulator.on_issue(rotator.hook());
        Ok(Self {
            emulator,
            rotator,
            email: email.to_string(),
            private_key,
        })
    }

    /// The database role the tokens log in as.
    pub fn role(&self) -> &str {
        self.rotator.role()
    }

    /// The service account's key file (JSON), pointing at the emulator.
    pub fn service_account_key(&self) -> serde_json::Value {
        self.emulator
            .service_account_key(&self.email, &self.private_key)
    }

    /// The real provider from `builder` with the service-account key and a policy of
    /// `attempt_timeout` per attempt (the rest default).
    pub async fn provider_from(
        &self,
        builder: CloudSqlTokenProviderBuilder,
        attempt_timeout: Duration,
    ) -> Result<CloudSqlTokenProvider, String> {
        builder
            .credentials_json(self.service_account_key())
            .map_err(|e| format!("the service-account key: {e}"))?
            .policy(GcpTokenPolicy {
                attempt_timeout,
                ..GcpTokenPolicy::default()
            })
            .build()
            .await
            .map_err(|e| format!("the provider: {e}"))
    }

    /// The real provider for instance `instance` (`PROJECT:REGION:INSTANCE`); see
    /// [`RotatingIssuer::provider_from`].
    pub async fn provider(
        &self,
        instance: &str,
        attempt_timeout: Duration,
    ) -> Result<CloudSqlTokenProvider, String> {
        self.provider_from(CloudSqlTokenProvider::builder(instance), attempt_timeout)
            .await
    }

    /// A catalog YAML logging in to `server`'s database `database` over TCP without TLS as
    /// the service account, with IAM tokens (`provider: gcp`, `iam_auth: true`).
    pub fn plain_yaml(&self, server: &PgServer, database: &str) -> String {
        format!(
            "provider: gcp\nhost: 127.0.0.1\nport: {}\nip_type: public\nsslmode: disable\n\
             database: {database}\nuser: {}\niam_auth: true\n",
            server.port(),
            self.email
        )
    }
}

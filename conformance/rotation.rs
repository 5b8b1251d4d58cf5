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

use super::launcher::PgServer;

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

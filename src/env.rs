//! The process environment, behind a trait so that tests and vector cases never read the real one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::text::Tainted;

/// What the configuration pipeline may ask of its surroundings: environment variables and
/// whether a file exists (libpq's default `~/.postgresql/root.crt` rule depends on it).
///
/// `Send + Sync`, so that one bound serves everywhere: `&dyn Environment` for a stage that
/// reads it once, `Arc<dyn Environment>` for what keeps it (a pool, a secrets backend).
pub trait Environment: Send + Sync {
    /// The value of an environment variable; `None` when unset or not valid Unicode.
    fn var(&self, name: &str) -> Option<String>;

    /// Whether a regular file exists at `path`.
    fn is_file(&self, path: &str) -> bool;

    /// Whether anything exists at `path`, as libpq asks with `stat()` before it reads a
    /// certificate or key file: `Ok(false)` when nothing is there (`ENOENT`, `ENOTDIR`),
    /// `Ok(true)` when something is (a directory or a device too: libpq then tries to read it
    /// and fails), `Err` for any other failure. [`stat_exists`] answers it for the real file
    /// system.
    fn file_exists(&self, path: &str) -> std::io::Result<bool>;

    /// The contents of the file at `path` (a libpq service file), at most 1 MiB of it. The
    /// default reads the real file system.
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(1 << 20)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// An environment kept by what outlives one call (a pool, a catalog, a secrets backend).
pub type SharedEnv = std::sync::Arc<dyn Environment>;

/// [`Environment::file_exists`] on the real file system: libpq's `stat()` test.
pub fn stat_exists(path: &str) -> std::io::Result<bool> {
    /// `ENOTDIR`: a path component is not a directory (libpq goes on as for `ENOENT`).
    const ENOTDIR: i32 = 20;
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.raw_os_error() == Some(ENOTDIR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Variables that locate files or name the process's user, not values of the catalog: what
/// they hold is shown in paths by design, so [`Recording`] does not mark them.
const NOT_CATALOG_VALUES: &[&str] = &[
    "HOME",
    "USER",
    "XDG_CACHE_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// An environment that marks every value it hands out as [`Tainted`], so that the stage
/// reading through it can keep them out of its messages.
pub struct Recording<'a> {
    inner: &'a dyn Environment,
    seen: std::sync::Mutex<Tainted>,
}

impl<'a> Recording<'a> {
    /// Records what `inner` is asked.
    pub fn new(inner: &'a dyn Environment) -> Self {
        Self {
            inner,
            seen: std::sync::Mutex::new(Tainted::default()),
        }
    }

    /// The values read so far.
    pub fn tainted(&self) -> Tainted {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Environment for Recording<'_> {
    fn var(&self, name: &str) -> Option<String> {
        let value = self.inner.var(name);
        if let Some(v) = &value
            && !NOT_CATALOG_VALUES.contains(&name)
        {
            self.seen.lock().unwrap_or_else(|e| e.into_inner()).add(v);
        }
        value
    }

    fn is_file(&self, path: &str) -> bool {
        self.inner.is_file(path)
    }

    fn file_exists(&self, path: &str) -> std::io::Result<bool> {
        self.inner.file_exists(path)
    }

    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.inner.read_file(path)
    }
}

/// The real process environment and file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn is_file(&self, path: &str) -> bool {
        Path::new(path).is_file()
    }

    fn file_exists(&self, path: &str) -> std::io::Result<bool> {
        stat_exists(path)
    }
}

/// A fixed environment: the variables and files it is given, nothing else.
///
/// ```
/// use tea_pgcloud::env::{Environment, MapEnv};
/// let env = MapEnv::new().with_var("RDS_HOSTNAME", "db.example.com");
/// assert_eq!(env.var("RDS_HOSTNAME").as_deref(), Some("db.example.com"));
/// assert_eq!(env.var("HOME"), None);
/// ```
#[derive(Clone, Default)]
pub struct MapEnv {
    vars: BTreeMap<String, String>,
    files: BTreeSet<String>,
    texts: BTreeMap<String, String>,
}

impl MapEnv {
    /// An empty environment with no files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a variable.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Adds a file that [`Environment::is_file`] reports as existing.
    pub fn with_file(mut self, path: impl Into<String>) -> Self {
        self.files.insert(path.into());
        self
    }

    /// Adds a file with contents, for [`Environment::read_file`].
    pub fn with_file_text(mut self, path: impl Into<String>, text: impl Into<String>) -> Self {
        let path = path.into();
        self.files.insert(path.clone());
        self.texts.insert(path, text.into());
        self
    }
}

impl std::fmt::Debug for MapEnv {
    // Values may be secrets (POSTGRES_PASSWORD): print the names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapEnv")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("files", &self.files)
            .finish()
    }
}

impl Environment for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn is_file(&self, path: &str) -> bool {
        self.files.contains(path)
    }

    /// The given files are all that exist.
    fn file_exists(&self, path: &str) -> std::io::Result<bool> {
        Ok(self.files.contains(path))
    }

    /// The text given with [`MapEnv::with_file_text`]; any other file cannot be read.
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.texts
            .get(path)
            .map(|t| t.as_bytes().to_vec())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

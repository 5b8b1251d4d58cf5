//! A Docker API version shim, for engines older than the API that testcontainers speaks.
//!
//! testcontainers 0.27 talks to the engine through bollard 0.20, which puts API version 1.52
//! (Docker 29) in every request path and never negotiates down; an older engine answers
//! `client version 1.52 is too new` to everything. Debian 12's `docker.io` (Docker 20.10, API
//! 1.41), the engine of this project's CI machines, is such an engine.
//!
//! The shim listens on a unix socket, forwards every connection to the real engine and rewrites
//! the version in request lines (` /v1.52/` to ` /v1.41/`: the same length, so no
//! `Content-Length` changes) to the newest version the engine supports, read from its
//! unversioned `GET /version`. Everything else, including upgraded (hijacked) exec streams, is
//! copied byte for byte. Point testcontainers at it with `DOCKER_HOST=unix://<socket>`:
//! `tea-pgcloud docker-shim` prints the line to export. The request bodies bollard sends are
//! those of API 1.52; the engine ignores fields it does not know, which is what the launcher's
//! requests (create, start, exec, logs, inspect, remove) need.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// The API version bollard 0.20 (testcontainers 0.27) writes into every request path.
pub const CLIENT_API: &str = "1.52";

/// How long a tail that might start a version pattern is held back, waiting for the rest.
const HOLD_BACK: Duration = Duration::from_millis(20);

/// The engine's socket: `DOCKER_HOST` when it is a `unix://` address, else
/// `/var/run/docker.sock`.
pub fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// Sends one unversioned request to the engine and returns the response body.
pub async fn engine_get(socket: &Path, path: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(socket).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the engine did not answer"))??;
    let text = String::from_utf8_lossy(&response);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_owned())
        }
        _ => Err(io::Error::other(format!(
            "unexpected answer to GET {path}: {}",
            text.lines().next().unwrap_or_default()
        ))),
    }
}

/// The newest API version the engine at `socket` supports (`ApiVersion` of `GET /version`).
pub async fn engine_api_version(socket: &Path) -> io::Result<String> {
    let body = engine_get(socket, "/version").await?;
    let value: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| io::Error::other(format!("GET /version: {e}")))?;
    value
        .get("ApiVersion")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other("GET /version has no ApiVersion"))
}

/// Compares two `major.minor` API versions.
pub fn api_older(a: &str, b: &str) -> bool {
    fn parts(v: &str) -> (u32, u32) {
        let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
        (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
    }
    parts(a) < parts(b)
}

/// Replaces every ` /v{from}/` in a byte stream with ` /v{to}/` (the same length).
#[derive(Debug)]
pub struct Rewriter {
    from: Vec<u8>,
    to: Vec<u8>,
    pending: Vec<u8>,
}

impl Rewriter {
    /// A rewriter from API version `from` to `to`; both must have the same length.
    pub fn new(from: &str, to: &str) -> Option<Self> {
        let from = format!(" /v{from}/").into_bytes();
        let to = format!(" /v{to}/").into_bytes();
        (from.len() == to.len()).then_some(Self {
            from,
            to,
            pending: Vec::new(),
        })
    }

    /// Feeds bytes; returns what can be sent now. A tail that is a proper prefix of the pattern
    /// is held back until [`Rewriter::feed`] or [`Rewriter::flush`] is called again.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let n = self.from.len();
        let mut i = 0;
        while i + n <= self.pending.len() {
            if self.pending[i..i + n] == self.from[..] {
                self.pending[i..i + n].copy_from_slice(&self.to);
                i += n;
            } else {
                i += 1;
            }
        }
        let keep = (1..n)
            .rev()
            .find(|&k| k <= self.pending.len() && self.pending.ends_with(&self.from[..k]))
            .unwrap_or(0);
        let ready = self.pending.len() - keep;
        self.pending.drain(..ready).collect()
    }

    /// Whether a tail is held back.
    pub fn holding(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Returns the held-back tail.
    pub fn flush(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// Copies client to engine through `rewriter`.
async fn upstream(
    mut from: tokio::net::unix::OwnedReadHalf,
    mut to: tokio::net::unix::OwnedWriteHalf,
    mut rewriter: Rewriter,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = if rewriter.holding() {
            match tokio::time::timeout(HOLD_BACK, from.read(&mut buf)).await {
                Ok(read) => read?,
                Err(_) => {
                    to.write_all(&rewriter.flush()).await?;
                    continue;
                }
            }
        } else {
            from.read(&mut buf).await?
        };
        if read == 0 {
            to.write_all(&rewriter.flush()).await?;
            return to.shutdown().await;
        }
        let out = rewriter.feed(&buf[..read]);
        to.write_all(&out).await?;
    }
}

/// Serves one client connection.
async fn serve_one(client: UnixStream, engine: PathBuf, from: String, to: String) {
    let Ok(server) = UnixStream::connect(&engine).await else {
        return;
    };
    let Some(rewriter) = Rewriter::new(&from, &to) else {
        return;
    };
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = server.into_split();
    let up = tokio::spawn(upstream(client_read, server_write, rewriter));
    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    let _ = client_write.shutdown().await;
    up.abort();
}

/// A running shim.
#[derive(Debug)]
pub struct Shim {
    /// The socket it listens on.
    pub socket: PathBuf,
    /// The engine's newest API version, which requests are rewritten to.
    pub engine_api: String,
}

impl Shim {
    /// `DOCKER_HOST` for clients of the shim.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

/// Binds `socket` (replacing a stale socket file) in front of the engine at `engine`, and
/// returns the shim and the future that serves it forever.
pub async fn bind(
    socket: &Path,
    engine: &Path,
) -> io::Result<(Shim, impl std::future::Future<Output = ()> + use<>)> {
    let engine_api = engine_api_version(engine).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("the Docker engine at {}: {e}", engine.display()),
        )
    })?;
    let to = if api_older(&engine_api, CLIENT_API) {
        engine_api.clone()
    } else {
        CLIENT_API.to_owned()
    };
    if Rewriter::new(CLIENT_API, &to).is_none() {
        return Err(io::Error::other(format!(
            "cannot rewrite API version {CLIENT_API} to {to}"
        )));
    }
    if socket.exists() {
        std::fs::remove_file(socket)?;
    }
    let listener = UnixListener::bind(socket)?;
    let engine = engine.to_path_buf();
    let serve = async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve_one(
                client,
                engine.clone(),
                CLIENT_API.to_owned(),
                to.clone(),
            ));
        }
    };
    Ok((
        Shim {
            socket: socket.to_path_buf(),
            engine_api,
        },
        serve,
    ))
}

/// Set in a child that [`rerun_through_shim`] started.
pub const CHILD_MARKER: &str = "TEA_DOCKER_SHIM_CHILD";

/// For programs that own their `main` (the CLI, harness-less test targets): when the engine is
/// older than [`CLIENT_API`] and `DOCKER_HOST` is not set, starts a shim on a private socket and
/// runs this same program again as a child with `DOCKER_HOST` pointing at it (testcontainers
/// reads only the process environment, which a running program cannot safely change). Returns
/// the child's exit code, or `None` when no shim is needed (or this is already the child): then
/// the caller goes on itself.
pub fn rerun_through_shim() -> Option<i32> {
    if std::env::var_os(CHILD_MARKER).is_some() || std::env::var_os("DOCKER_HOST").is_some() {
        return None;
    }
    let engine = engine_socket();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let api = runtime.block_on(engine_api_version(&engine)).ok()?;
    if !api_older(&api, CLIENT_API) {
        return None;
    }
    let dir = match tempfile::Builder::new()
        .prefix("tea-docker-shim-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("docker shim: cannot create its directory: {e}");
            return Some(1);
        }
    };
    let socket = dir.path().join("docker.sock");
    let (shim, serve) = match runtime.block_on(bind(&socket, &engine)) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("docker shim: {e}");
            return Some(1);
        }
    };
    eprintln!(
        "docker shim: the engine speaks API {}; testcontainers' requests (API {CLIENT_API}) go \
         through {}",
        shim.engine_api,
        shim.socket.display()
    );
    std::thread::spawn(move || runtime.block_on(serve));
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => {
            eprintln!("docker shim: cannot find this program: {e}");
            return Some(1);
        }
    };
    let status = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .env("DOCKER_HOST", shim.docker_host())
        .env(CHILD_MARKER, "1")
        .status();
    drop(dir);
    Some(match status {
        Ok(status) => status.code().unwrap_or(1),
        Err(e) => {
            eprintln!("docker shim: cannot run this program again: {e}");
            1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_request_lines_across_chunk_boundaries() {
        let request = b"GET /v1.52/containers/json HTTP/1.1\r\nHost: d\r\n\r\nPOST /v1.52/exec/x/start HTTP/1.1\r\n\r\n";
        let expected = b"GET /v1.41/containers/json HTTP/1.1\r\nHost: d\r\n\r\nPOST /v1.41/exec/x/start HTTP/1.1\r\n\r\n";
        for split in 0..request.len() {
            let mut r = Rewriter::new("1.52", "1.41").expect("same length");
            let mut out = r.feed(&request[..split]);
            out.extend(r.feed(&request[split..]));
            out.extend(r.flush());
            assert_eq!(out, expected, "split at {split}");
        }
    }

    #[test]
    fn holds_back_only_a_possible_start_of_the_pattern() {
        let mut r = Rewriter::new("1.52", "1.41").expect("same length");
        assert_eq!(r.feed(b"abc /v1."), b"abc");
        assert!(r.holding());
        assert_eq!(r.feed(b"9/x"), b" /v1.9/x");
        assert!(!r.holding());
        assert_eq!(r.feed(b"body}"), b"body}");
        assert!(!r.holding());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(api_older("1.41", "1.52"));
        assert!(api_older("1.9", "1.41"));
        assert!(!api_older("1.52", "1.52"));
        assert!(!api_older("1.53", "1.52"));
        assert!(Rewriter::new("1.52", "1.9").is_none());
    }
}

//! The `docker` launcher (cargo feature `docker`): a throwaway PostgreSQL in a container, through
//! testcontainers and its Postgres module, with the official image's contract, as a
//! [`DockerServer`] (one [`Server`] of `conformance::launcher`'s `PgServer`).
//!
//! The image is `TEA_PG_IMAGE` (`name:tag`); by default `tea-pgcloud/postgres:17` when the engine
//! holds it (built offline by `conformance/image/build.sh`), else the official
//! `postgres:17-alpine`. The container starts as the official image documents: a random
//! `POSTGRES_PASSWORD` for the superuser `postgres`, arguments passed to `postgres` (`-c
//! fsync=off` and friends), readiness by the module's log lines. Then every profile is applied
//! inside the running container by one `exec` (as root, the image's user): the TLS files are
//! written under `$PGDATA/tea/` owned by `postgres` with mode 0600 (PostgreSQL refuses a key it
//! does not own), `tea_profile.conf` (included from `postgresql.conf`) sets `ssl` and the file
//! paths, and `pg_hba.conf` is replaced; `pg_reload_conf()` makes it take effect, and the reload
//! is proven in effect the same way as the native launcher's (a generation sentinel, the log,
//! `SHOW ssl`, an `SSLRequest` probe when TLS is off).
//!
//! Differences from the native launcher, all forced by the container's network:
//! - clients reach the server through the engine's port mapping on 127.0.0.1, so inside the
//!   container they arrive from the bridge's gateway, not from 127.0.0.1: the address field of
//!   the profile's `pg_hba.conf` lines (`127.0.0.1/32`, `::1/128`) becomes `all`. The published
//!   port is bound to 127.0.0.1 only.
//! - there is no unix socket on the host: [`Server::superuser_password`] lets harness code
//!   log in as `postgres` over TCP (a `host all postgres all scram-sha-256` line precedes the
//!   profile's lines), and admin SQL runs through `psql` inside the container.
//!
//! testcontainers 0.27 speaks Docker API 1.52 only; an older engine needs the shim of
//! [`crate::conformance::docker_shim`] (`tea-pgcloud docker-shim`), which [`DockerServer::start`]
//! says when the engine refuses the version.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use testcontainers::core::{ExecCommand, IntoContainerPort};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, ImageExt};
use testcontainers_modules::postgres::Postgres;

use super::docker_shim;
use super::server::{
    ApplyMode, ERROR_LOG_LINES, LaunchError, Profile, RELOAD_FAILURE_MARKERS, RELOAD_TIMEOUT, ROLE,
    SUPERUSER, Server, Watchdog, answers_ssl_request, conf_quote, last_lines, random_hex,
};

/// The default image when the engine holds it: the offline build of `conformance/image`.
pub const OFFLINE_IMAGE: &str = "tea-pgcloud/postgres:17";
/// The default image otherwise: the official one.
pub const OFFICIAL_IMAGE: &str = "postgres:17-alpine";
/// How long a container may take to be ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The label whose value (random per server) names a server's container to its watchdog.
pub const WATCHDOG_LABEL: &str = "tea-pgcloud.watchdog";

/// The docker watchdog's cleanup; `$1` the label (`key=value`), `$2` the same as the engine
/// API's `filters` query parameter, then the engines to try (a `DOCKER_HOST` value, or
/// `default`). It removes the labelled containers with `docker rm -f -v`, else through the
/// engine's API with `curl` on a unix socket, and stops at the first engine where that works.
const DOCKER_CLEANUP: &str = r#"label=$1
filters=$2
shift 2
for host in "$@"; do
  if [ "$host" = default ]; then
    unset DOCKER_HOST
    sock=/var/run/docker.sock
  else
    DOCKER_HOST=$host
    export DOCKER_HOST
    case "$host" in unix://*) sock=${host#unix://} ;; *) sock= ;; esac
  fi
  if command -v docker >/dev/null 2>&1 && ids=$(docker ps -aq --filter "label=$label"); then
    [ -z "$ids" ] && exit 0
    docker rm -f -v $ids >/dev/null && exit 0
  elif [ -n "$sock" ] && command -v curl >/dev/null 2>&1 &&
    list=$(curl -sf --max-time 30 --unix-socket "$sock" "http://docker/containers/json?all=1&filters=$filters"); then
    ok=1
    for id in $(printf '%s' "$list" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4); do
      curl -sf --max-time 30 --unix-socket "$sock" -X DELETE "http://docker/containers/$id?force=1&v=1" >/dev/null || ok=0
    done
    [ "$ok" = 1 ] && exit 0
  fi
done
exit 1
"#;

/// The script that writes a profile into the container; arguments: certificate, key, client CA
/// (each empty when absent), `tea_profile.conf`, `pg_hba.conf`.
const APPLY_SCRIPT: &str = r#"set -eu
d="$PGDATA/tea"
mkdir -p "$d"
chown postgres:postgres "$d"
chmod 700 "$d"
put() {
  printf '%s' "$2" > "$1.tmp"
  chown postgres:postgres "$1.tmp"
  chmod 600 "$1.tmp"
  mv -f "$1.tmp" "$1"
}
if [ -n "$1" ]; then put "$d/server.crt" "$1"; fi
if [ -n "$2" ]; then put "$d/server.key" "$2"; fi
if [ -n "$3" ]; then put "$d/client-ca.crt" "$3"; fi
put "$PGDATA/tea_profile.conf" "$4"
put "$PGDATA/pg_hba.conf" "$5"
if ! grep -q "^include_if_exists 'tea_profile.conf'" "$PGDATA/postgresql.conf"; then
  printf "\n# tea-pgcloud docker launcher\ninclude_if_exists 'tea_profile.conf'\n" >> "$PGDATA/postgresql.conf"
fi
"#;

/// The image to run: `TEA_PG_IMAGE`, else [`OFFLINE_IMAGE`] when the engine holds it, else
/// [`OFFICIAL_IMAGE`].
pub fn default_image() -> String {
    if let Some(image) = std::env::var("TEA_PG_IMAGE")
        .ok()
        .filter(|i| !i.trim().is_empty())
    {
        return image.trim().to_owned();
    }
    if image_present(OFFLINE_IMAGE) {
        OFFLINE_IMAGE.to_owned()
    } else {
        OFFICIAL_IMAGE.to_owned()
    }
}

/// Splits `name[:tag]` (a registry port is not a tag).
pub fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// Runs the future `make` builds on a private runtime, on a thread of its own (callers may be
/// inside a runtime).
fn block<M, F>(make: M) -> F::Output
where
    M: FnOnce() -> F + Send,
    F: Future,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(make()))
            })
            .join()
    })
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    .unwrap_or_else(|e| panic!("cannot build a tokio runtime: {e}"))
}

/// Whether the engine answers at all.
pub fn engine_answers() -> bool {
    block(|| async { docker_shim::engine_api_version(&docker_shim::engine_socket()).await }).is_ok()
}

/// Whether the engine holds `image`.
pub fn image_present(image: &str) -> bool {
    let socket = docker_shim::engine_socket();
    block(
        || async move { docker_shim::engine_get(&socket, &format!("/images/{image}/json")).await },
    )
    .is_ok()
}

/// Checks that the engine answers and speaks testcontainers' API version, and holds `image`.
fn preflight(image: &str) -> Result<(), LaunchError> {
    let socket = docker_shim::engine_socket();
    let versioned = format!("/v{}/version", docker_shim::CLIENT_API);
    let result = block(|| async { docker_shim::engine_get(&socket, &versioned).await });
    if let Err(e) = result {
        let engine = block(|| async { docker_shim::engine_api_version(&socket).await });
        return Err(match engine {
            Ok(api) if docker_shim::api_older(&api, docker_shim::CLIENT_API) => {
                LaunchError::new(format!(
                    "the Docker engine at {} speaks API {api}, and testcontainers 0.27 speaks only \
                     {}: start the version shim (`tea-pgcloud docker-shim --socket /tmp/tea-docker.sock &`) \
                     and export DOCKER_HOST=unix:///tmp/tea-docker.sock",
                    socket.display(),
                    docker_shim::CLIENT_API
                ))
            }
            Ok(_) => LaunchError::new(format!(
                "the Docker engine at {} refused GET {versioned}: {e}",
                socket.display()
            )),
            Err(e) => LaunchError::new(format!(
                "no Docker engine answers at {} ({e}); start one, or set DOCKER_HOST",
                socket.display()
            )),
        });
    }
    if !image_present(image) {
        return Err(LaunchError::new(format!(
            "the Docker engine does not hold the image {image}: build the offline images with \
             `conformance/image/build.sh 15 17` (then TEA_PG_IMAGE=tea-pgcloud/postgres:17), or \
             `docker pull {image}` where a registry is reachable"
        )));
    }
    Ok(())
}

/// A profile's `pg_hba.conf` line as the container must see it: a loopback address field
/// becomes `all` (see the module documentation).
pub fn container_hba_line(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // host, hostssl, hostnossl, hostgssenc, hostnogssenc: the address is the fourth field.
    let is_host = fields.first().is_some_and(|f| f.starts_with("host"));
    if is_host && fields.len() >= 4 && matches!(fields[3], "127.0.0.1/32" | "::1/128" | "localhost")
    {
        let mut out: Vec<&str> = fields.clone();
        out[3] = "all";
        out.join(" ")
    } else {
        line.to_owned()
    }
}

/// The watchdog of containers labelled `label` (`key=value`, ASCII): it removes them (`docker rm
/// -f -v`, else the engine's API through `curl`), through `DOCKER_HOST` and, when that no
/// longer answers (a version shim that ended with the launcher), the default engine.
fn watchdog(label: &str) -> Result<Watchdog, LaunchError> {
    // `{"label":["<label>"]}`, percent-encoded for the API's query string.
    let filters: String = format!("{{\"label\":[\"{label}\"]}}")
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let host = env::var_os("DOCKER_HOST").filter(|h| !h.is_empty());
    let default = OsString::from("default");
    let mut args = vec![OsStr::new(label), OsStr::new(&filters)];
    args.extend(host.as_deref());
    args.push(&default);
    Watchdog::spawn(DOCKER_CLEANUP, &args)
}

/// A shell function running its arguments as the server's OS user (`setpriv` in the offline
/// image, `su-exec` in the official Alpine one).
const AS_POSTGRES: &str = r#": "${PGDATA:=/var/lib/postgresql/data}"
as_postgres() {
  if command -v setpriv >/dev/null 2>&1; then
    setpriv --reuid=postgres --regid=postgres --init-groups env HOME=/var/lib/postgresql "$@"
  else
    su-exec postgres "$@"
  fi
}"#;

/// The first process of a standby container (`$1`: the primary's bridge address): a base
/// backup, then the server in the background, the launcher's ready line once it accepts
/// read-only connections (the Postgres module waits for it on both streams), then waiting on
/// the server.
const STANDBY_SCRIPT: &str = r#"set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
as_postgres() {
  if command -v setpriv >/dev/null 2>&1; then
    setpriv --reuid=postgres --regid=postgres --init-groups env HOME=/var/lib/postgresql PGPASSWORD="$PGPASSWORD" "$@"
  else
    su-exec postgres "$@"
  fi
}
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
tries=0
until as_postgres pg_basebackup -D "$PGDATA" -R -X stream --no-sync -c fast     -d "host=$1 port=5432 user=postgres application_name=tea_standby"; do
  tries=$((tries + 1))
  [ "$tries" -lt 20 ] || exit 1
  find "$PGDATA" -mindepth 1 -delete
  sleep 0.5
done
as_postgres postgres -D "$PGDATA" -c listen_addresses='*' -c hot_standby=on &
pid=$!
until as_postgres pg_isready -q -h /var/run/postgresql; do sleep 0.2; done
echo "tea-pgcloud launcher: standby: database system is ready to accept connections"
echo "tea-pgcloud launcher: standby: database system is ready to accept connections" >&2
wait "$pid"
"#;

/// A container of `image` under the official contract (superuser `postgres` with this
/// password, database `postgres`), labelled for the watchdog, with port 5432 published on
/// loopback only; the caller adds the command.
fn postgres_request(
    image: &str,
    superuser_password: &str,
    label: &str,
) -> ContainerRequest<Postgres> {
    let (name, tag) = split_image(image);
    Postgres::default()
        .with_user(SUPERUSER)
        .with_password(superuser_password)
        .with_db_name("postgres")
        .with_name(name)
        .with_tag(tag)
        .with_label(WATCHDOG_LABEL, label)
        .with_mapped_port(0, 5432.tcp())
        .with_host_config_modifier(|host| {
            // Publish on loopback only.
            if let Some(bindings) = host.port_bindings.as_mut() {
                for list in bindings.values_mut().flatten() {
                    for binding in list.iter_mut() {
                        binding.host_ip = Some("127.0.0.1".to_owned());
                    }
                }
            }
        })
        .with_startup_timeout(STARTUP_TIMEOUT)
}

/// Starts `request` (from `image`) and reads the loopback port its 5432 is published on.
fn run_published(
    request: ContainerRequest<Postgres>,
    image: &str,
) -> Result<(ContainerAsync<Postgres>, u16), LaunchError> {
    let container = block(|| request.start())
        .map_err(|e| LaunchError::new(format!("starting a container from {image} failed: {e}")))?;
    let port = block(|| container.get_host_port_ipv4(5432.tcp())).map_err(|e| {
        LaunchError::new(format!("the container's port 5432 is not published: {e}"))
    })?;
    Ok((container, port))
}

/// A PostgreSQL server in a container; the container is removed on drop, and by its watchdog
/// when the launching process ends without dropping it (`conformance::server`, "When the
/// launching process ends").
pub struct DockerServer {
    container: Option<ContainerAsync<Postgres>>,
    watchdog: Option<Watchdog>,
    image: String,
    port: u16,
    password: String,
    superuser_password: String,
    version: String,
    profile: Profile,
    generation: u64,
}

impl fmt::Debug for DockerServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerServer")
            .field(
                "container",
                &self.container.as_ref().map(|c| c.id().to_owned()),
            )
            .field("image", &self.image)
            .field("port", &self.port)
            .field("version", &self.version)
            .field("profile", &self.profile.name)
            .finish_non_exhaustive()
    }
}

impl DockerServer {
    /// Starts `image` with the official contract, applies `profile` and creates the login role
    /// `tea` with a random SCRAM-SHA-256 password.
    pub fn start(image: &str, profile: &Profile) -> Result<DockerServer, LaunchError> {
        preflight(image)?;
        let superuser_password = random_hex(16)?;
        // Armed before the container exists: a launcher killed while the container starts
        // leaves nothing behind either.
        let label = random_hex(8)?;
        let watchdog = watchdog(&format!("{WATCHDOG_LABEL}={label}"))?;
        let request = postgres_request(image, &superuser_password, &label).with_cmd([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=100",
            "-c",
            "password_encryption=scram-sha-256",
        ]);
        let (container, port) = run_published(request, image)?;
        let mut server = DockerServer {
            container: Some(container),
            watchdog: Some(watchdog),
            image: image.to_owned(),
            port,
            password: random_hex(16)?,
            superuser_password,
            version: String::new(),
            profile: profile.clone(),
            generation: 1,
        };
        server.reload_profile(profile)?;
        server.admin_sql(&format!(
            "SET log_statement = 'none';\n\
             SET password_encryption = 'scram-sha-256';\n\
             CREATE ROLE {ROLE} LOGIN PASSWORD '{}';\n",
            server.password
        ))?;
        let version = server.admin_sql("SHOW server_version")?;
        server.version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(server)
    }

    fn container(&self) -> &ContainerAsync<Postgres> {
        self.container
            .as_ref()
            .expect("the container lives until drop")
    }

    /// Runs `cmd` in the container (as root); returns (exit code, stdout, stderr).
    fn exec(&self, cmd: Vec<String>) -> Result<(i64, String, String), LaunchError> {
        let container = self.container();
        let shown = cmd.first().cloned().unwrap_or_default();
        block(|| async move {
            let mut result = container
                .exec(ExecCommand::new(cmd))
                .await
                .map_err(|e| LaunchError::new(format!("docker exec {shown}: {e}")))?;
            let stdout = result
                .stdout_to_vec()
                .await
                .map_err(|e| LaunchError::new(format!("docker exec {shown}: stdout: {e}")))?;
            let stderr = result
                .stderr_to_vec()
                .await
                .map_err(|e| LaunchError::new(format!("docker exec {shown}: stderr: {e}")))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let code = loop {
                match result.exit_code().await {
                    Ok(Some(code)) => break code,
                    Ok(None) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(None) => {
                        return Err(LaunchError::new(format!(
                            "docker exec {shown}: no exit code after 10 s"
                        )));
                    }
                    Err(e) => {
                        return Err(LaunchError::new(format!(
                            "docker exec {shown}: exit code: {e}"
                        )));
                    }
                }
            };
            Ok((
                code,
                String::from_utf8_lossy(&stdout).into_owned(),
                String::from_utf8_lossy(&stderr).into_owned(),
            ))
        })
    }

    /// The container's log (the server's stderr) so far.
    fn log(&self) -> String {
        let container = self.container();
        block(|| async move { container.stderr_to_vec().await })
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    fn with_log(&self, err: LaunchError) -> LaunchError {
        err.with_log(self.log_tail(ERROR_LOG_LINES))
    }

    /// Writes `profile` into the container and reloads; the reload is proven in effect.
    fn reload_profile(&mut self, profile: &Profile) -> Result<(), LaunchError> {
        self.generation += 1;
        self.profile = profile.clone();
        let name = profile.name.replace(['\n', '\r'], " ");
        let mut conf = format!("# tea-pgcloud docker launcher: profile {name}\n");
        let (mut cert, mut key, mut ca) = (String::new(), String::new(), String::new());
        match &profile.tls {
            Some(tls) => {
                cert.clone_from(&tls.cert_pem);
                key.clone_from(&tls.key_pem);
                conf.push_str("ssl = on\n");
                conf.push_str(&format!(
                    "ssl_cert_file = {}\nssl_key_file = {}\n",
                    conf_quote("tea/server.crt"),
                    conf_quote("tea/server.key")
                ));
                match &tls.client_ca_pem {
                    Some(pem) => {
                        ca.clone_from(pem);
                        conf.push_str(&format!(
                            "ssl_ca_file = {}\n",
                            conf_quote("tea/client-ca.crt")
                        ));
                    }
                    None => conf.push_str("ssl_ca_file = ''\n"),
                }
            }
            None => conf.push_str("ssl = off\n"),
        }
        conf.push_str(&format!("tea.generation = '{}'\n", self.generation));
        let mut hba = format!(
            "# tea-pgcloud docker launcher: profile {name}\n\
             local all all trust\n\
             host all postgres all scram-sha-256\n\
             host replication postgres all scram-sha-256\n"
        );
        for line in &profile.hba {
            hba.push_str(&container_hba_line(line));
            hba.push('\n');
        }
        let offset = self.log().len();
        let (code, _, stderr) = self.exec(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            APPLY_SCRIPT.to_owned(),
            "sh".to_owned(),
            cert,
            key,
            ca,
            conf,
            hba,
        ])?;
        if code != 0 {
            return Err(self.with_log(
                LaunchError::new(format!(
                    "writing profile {:?} into the container failed (exit {code})",
                    profile.name
                ))
                .with_stderr(stderr),
            ));
        }
        self.admin_sql("SELECT pg_reload_conf()")?;
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let generation = self.admin_sql("SELECT current_setting('tea.generation', true)")?;
            if generation == self.generation.to_string() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(self.with_log(LaunchError::new(format!(
                    "the server did not process the reload to profile {:?} within \
                     {RELOAD_TIMEOUT:?}",
                    profile.name
                ))));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        let new_log = log.get(offset..).unwrap_or_default();
        if let Some(line) = new_log
            .lines()
            .find(|l| RELOAD_FAILURE_MARKERS.iter().any(|m| l.contains(m)))
        {
            return Err(LaunchError::new(format!(
                "profile {:?} did not fully take effect: {line}",
                profile.name
            ))
            .with_log(new_log.to_owned()));
        }
        let ssl = self.admin_sql("SHOW ssl")?;
        let want = if profile.tls.is_some() { "on" } else { "off" };
        if ssl != want {
            return Err(self.with_log(LaunchError::new(format!(
                "profile {:?} is not in effect: ssl is {ssl}, expected {want}",
                profile.name
            ))));
        }
        if profile.tls.is_none() {
            match answers_ssl_request(self.port) {
                Ok(false) => {}
                Ok(true) => {
                    return Err(self.with_log(LaunchError::new(format!(
                        "profile {:?} has TLS off but the server still accepts TLS",
                        profile.name
                    ))));
                }
                Err(e) => {
                    return Err(self.with_log(LaunchError::new(format!(
                        "probing 127.0.0.1:{} with an SSLRequest: {e}",
                        self.port
                    ))));
                }
            }
        }
        Ok(())
    }

    /// Runs a program inside the container (as root) with `files` written first under
    /// `/tmp/tea-client/` (mode 0600), in an environment of `PATH` and `env` only; returns (exit
    /// code, stdout, stderr). The libpq 17 oracle runs the container's own `psql` this way.
    pub fn run_in_container(
        &self,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        program: &[&str],
    ) -> Result<(i64, String, String), LaunchError> {
        let mut script =
            String::from("set -eu\nmkdir -p /tmp/tea-client\nchmod 700 /tmp/tea-client\nn=1\n");
        let mut args = vec!["sh".to_owned()];
        for (name, contents) in files {
            if name.contains('/') || name.contains('\'') || name.is_empty() {
                return Err(LaunchError::new(format!("bad file name {name:?}")));
            }
            script.push_str(&format!(
                "printf '%s' \"$1\" > '/tmp/tea-client/{name}'; chmod 600 '/tmp/tea-client/{name}'; shift\n"
            ));
            args.push((*contents).to_owned());
        }
        script.push_str("exec env -i PATH=\"$PATH\"");
        for (name, value) in env {
            script.push_str(&format!(" {name}='{}'", value.replace('\'', "'\\''")));
        }
        script.push_str(" \"$@\"\n");
        let mut cmd = vec!["sh".to_owned(), "-c".to_owned(), script];
        cmd.extend(args);
        cmd.extend(program.iter().map(|s| (*s).to_owned()));
        self.exec(cmd)
    }

    /// The container's address on the engine's bridge network (where other containers reach its
    /// port 5432).
    pub fn bridge_ip(&self) -> Result<std::net::IpAddr, LaunchError> {
        // Read from the engine's inspect answer: testcontainers looks the network up by the
        // container's network mode, which older engines report as `default`.
        let socket = docker_shim::engine_socket();
        let path = format!("/containers/{}/json", self.container_id());
        let body = block(|| async { docker_shim::engine_get(&socket, &path).await })
            .map_err(|e| LaunchError::new(format!("inspecting the container: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| LaunchError::new(format!("inspecting the container: {e}")))?;
        let settings = &value["NetworkSettings"];
        let mut candidates = vec![settings["IPAddress"].as_str()];
        if let Some(networks) = settings["Networks"].as_object() {
            candidates.extend(networks.values().map(|n| n["IPAddress"].as_str()));
        }
        candidates
            .into_iter()
            .flatten()
            .find_map(|ip| ip.parse().ok())
            .ok_or_else(|| LaunchError::new("the container has no address on a bridge network"))
    }

    /// A streaming standby of this server in a container of its own: a base backup over the
    /// engine's bridge network (`pg_basebackup -R -X stream`, as the superuser, with
    /// `application_name=tea_standby`), then a hot standby, published on its own loopback port.
    /// The login role and passwords are this server's (one cluster). The container's first
    /// process is a shell that starts the server and prints the launcher's ready line once
    /// it accepts read-only connections.
    pub fn start_standby(&self) -> Result<DockerServer, LaunchError> {
        let primary_ip = self.bridge_ip()?;
        let label = random_hex(8)?;
        let watchdog = watchdog(&format!("{WATCHDOG_LABEL}={label}"))?;
        let request = postgres_request(&self.image, &self.superuser_password, &label)
            .with_env_var("PGPASSWORD", &self.superuser_password)
            .with_cmd([
                "bash".to_owned(),
                "-c".to_owned(),
                STANDBY_SCRIPT.to_owned(),
                "standby".to_owned(),
                primary_ip.to_string(),
            ]);
        let (container, port) = run_published(request, &self.image)?;
        Ok(DockerServer {
            container: Some(container),
            watchdog: Some(watchdog),
            image: self.image.clone(),
            port,
            password: self.password.clone(),
            superuser_password: self.superuser_password.clone(),
            version: self.version.clone(),
            profile: self.profile.clone(),
            generation: self.generation,
        })
    }

    /// `pg_ctl promote -w` in the container, as the server's user: the standby ends recovery.
    pub fn promote(&self) -> Result<(), LaunchError> {
        let (code, _, stderr) = self.exec(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("{AS_POSTGRES}\nas_postgres pg_ctl -D \"$PGDATA\" -w -t 30 promote"),
        ])?;
        if code != 0 {
            return Err(self.with_log(
                LaunchError::new(format!("pg_ctl promote exited with {code}")).with_stderr(stderr),
            ));
        }
        Ok(())
    }

    /// Stops the container (its stop signal, SIGINT: PostgreSQL's fast shutdown, every session
    /// ended with SQLSTATE 57P01); the container stays until drop.
    pub fn stop(&self) -> Result<(), LaunchError> {
        let container = self.container();
        block(|| container.stop())
            .map_err(|e| LaunchError::new(format!("stopping the container failed: {e}")))
    }

    /// The image the container runs.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The container's id.
    pub fn container_id(&self) -> &str {
        self.container().id()
    }
}

impl Server for DockerServer {
    fn launcher(&self) -> &'static str {
        "docker"
    }

    /// Writes the profile into the container and reloads; the reload is proven in effect.
    /// [`ApplyMode::Restart`] is refused: the server is the container's main process.
    fn apply_with(&mut self, profile: &Profile, mode: ApplyMode) -> Result<ApplyMode, LaunchError> {
        match mode {
            ApplyMode::Reload => self.reload_profile(profile).map(|()| ApplyMode::Reload),
            ApplyMode::Restart => Err(LaunchError::new(
                "the docker launcher applies profiles by reload only",
            )),
        }
    }

    /// The published TCP port on 127.0.0.1.
    fn port(&self) -> u16 {
        self.port
    }

    /// The last `lines` lines of the container's log.
    fn log_tail(&self, lines: usize) -> String {
        last_lines(&self.log(), lines)
    }

    fn password(&self) -> &str {
        &self.password
    }

    /// The superuser `postgres`'s password, for harness logins over TCP (the container's unix
    /// socket is not on the host).
    fn superuser_password(&self) -> Option<&str> {
        Some(&self.superuser_password)
    }

    fn server_version(&self) -> &str {
        &self.version
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Runs SQL as the superuser through `psql` inside the container (the unix socket, `trust`);
    /// returns each query's rows, one per line, `|` between columns.
    fn admin_sql(&self, sql: &str) -> Result<String, LaunchError> {
        let cmd = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "printf '%s' \"$1\" | psql -X -q -At -w -v ON_ERROR_STOP=1 -U postgres -d postgres -f -"
                .to_owned(),
            "sh".to_owned(),
            sql.to_owned(),
        ];
        let (code, stdout, stderr) = self.exec(cmd)?;
        if code != 0 {
            let mut err = LaunchError::new(format!("psql in the container exited with {code}"))
                .with_command("psql -f - (in the container)")
                .with_stderr(stderr);
            err = self.with_log(err);
            return Err(err);
        }
        Ok(stdout.trim_end().to_owned())
    }
}

impl Drop for DockerServer {
    fn drop(&mut self) {
        let removed = match self.container.take() {
            Some(container) => block(|| container.rm()).is_ok(),
            None => true,
        };
        // Not removed: the watchdog, dropped with `self`, removes the container by its label.
        if removed && let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_address_fields_become_all() {
        assert_eq!(
            container_hba_line("hostssl all all 127.0.0.1/32 cert"),
            "hostssl all all all cert"
        );
        assert_eq!(
            container_hba_line("host all all ::1/128 scram-sha-256"),
            "host all all all scram-sha-256"
        );
        assert_eq!(
            container_hba_line("hostnossl  all all 127.0.0.1/32 reject"),
            "hostnossl all all all reject"
        );
        assert_eq!(
            container_hba_line("local all all trust"),
            "local all all trust"
        );
        assert_eq!(
            container_hba_line("host all all 10.0.0.0/8 md5"),
            "host all all 10.0.0.0/8 md5"
        );
    }

    #[test]
    fn image_names_split_at_the_tag() {
        assert_eq!(
            split_image("tea-pgcloud/postgres:15"),
            ("tea-pgcloud/postgres", "15")
        );
        assert_eq!(split_image("postgres"), ("postgres", "latest"));
        assert_eq!(
            split_image("registry:5000/postgres"),
            ("registry:5000/postgres", "latest")
        );
    }
}

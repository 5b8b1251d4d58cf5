//! The certificate factory of the TLS conformance matrix.
//!
//! A [`CertFactory`] holds three certificate authorities, generated fresh for each test run:
//!
//! * the **root** CA, the one clients are told to trust ([`CertFactory::root_pem`]);
//! * an **intermediate** CA signed by the root ([`CertFactory::intermediate_pem`]);
//! * an **other** root, unrelated to the first ([`CertFactory::other_root_pem`]), the "wrong CA".
//!
//! From them it issues the server certificate of every [`ServerCertKind`] and client
//! certificates for `cert` authentication ([`CertFactory::client`]). Every certificate is a
//! plain X.509 v3 certificate that both OpenSSL 3 (libpq, the PostgreSQL server) and
//! rustls/webpki accept:
//!
//! * keys are ECDSA P-256, private keys are written as PKCS#8 PEM (`BEGIN PRIVATE KEY`);
//! * CA certificates carry a critical `basicConstraints CA:TRUE` (the intermediate with
//!   `pathlen:0`), a critical `keyUsage keyCertSign, cRLSign` and a `subjectKeyIdentifier`;
//! * leaf certificates carry a critical `basicConstraints CA:FALSE`, a critical
//!   `keyUsage digitalSignature` (ECDSA keys never encipher keys, so no `keyEncipherment`),
//!   `extendedKeyUsage serverAuth` or `clientAuth`, a `subjectKeyIdentifier` and an
//!   `authorityKeyIdentifier` naming the issuer's key;
//! * serial numbers are 16 random bytes.
//!
//! Validity: leaves run from one day ago to 30 days ahead (the expired leaf ran from 30 days
//! ago to yesterday); the CAs from two days ago to 60 days ahead, so that every leaf's window
//! lies inside its issuer's and OpenSSL, which insists that every certificate of the chain is
//! valid now, accepts the chain.
//!
//! ```
//! use tea_pgcloud::conformance::certs::{CertFactory, ServerCertKind};
//! let factory = CertFactory::new()?;
//! let server = factory.server(ServerCertKind::Good)?;
//! assert!(server.cert.starts_with("-----BEGIN CERTIFICATE-----"));
//! let client = factory.client("postgres")?;
//! assert!(client.key.starts_with("-----BEGIN PRIVATE KEY-----"));
//! # Ok::<(), tea_pgcloud::conformance::certs::CertError>(())
//! ```

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

/// The organization name written into the subject of the factory's CA certificates.
pub const ORGANIZATION: &str = "tea-pgcloud conformance";
/// The common name of the root CA (the one clients trust).
pub const ROOT_CN: &str = "tea-pgcloud test root CA";
/// The common name of the unrelated second root CA (the "wrong CA").
pub const OTHER_ROOT_CN: &str = "tea-pgcloud unrelated root CA";
/// The common name of the intermediate CA (signed by the root).
pub const INTERMEDIATE_CN: &str = "tea-pgcloud test intermediate CA";
/// The dNSName of the [`ServerCertKind::WrongHost`] certificate.
pub const WRONG_HOST: &str = "wrong.example.com";
/// The wildcard dNSName of the [`ServerCertKind::Wildcard`] certificate.
pub const WILDCARD: &str = "*.tea.test";
/// A host name that [`WILDCARD`] covers (one label in place of the `*`).
pub const WILDCARD_MATCH: &str = "db.tea.test";
/// The common name of the [`ServerCertKind::IpOnly`] certificate.
pub const IP_ONLY_CN: &str = "tea ip-only";

/// PEM text of a certificate chain and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate first, then any chain certificates the server serves (PEM blocks,
    /// each ending in a newline).
    pub cert: String,
    /// The private key of the first certificate, PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub key: String,
}

impl fmt::Debug for Pem {
    /// Shows the certificates; the private key is elided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"[elided]")
            .finish()
    }
}

/// Which server certificate a profile serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerCertKind {
    /// Signed by the root; SAN dNSName `localhost`, iPAddress `127.0.0.1` and `::1`;
    /// CN `localhost`.
    Good,
    /// Signed by the root; SAN dNSName `wrong.example.com` only; CN `wrong.example.com`.
    WrongHost,
    /// Signed by the root; no subjectAltName extension at all; CN `localhost`.
    CnOnly,
    /// Signed by the root; SAN dNSName `*.tea.test` only; CN `*.tea.test`.
    Wildcard,
    /// Signed by the root; SAN iPAddress `127.0.0.1` only (no dNSName); CN `tea ip-only`.
    IpOnly,
    /// Signed by the root; names like [`ServerCertKind::Good`], but expired (valid from 30
    /// days ago until yesterday).
    Expired,
    /// Like [`ServerCertKind::Good`], but signed by the unrelated second root.
    OtherCa,
    /// Like [`ServerCertKind::Good`], but signed by the intermediate; the served chain is
    /// leaf + intermediate.
    IntermediateChain,
    /// Like [`ServerCertKind::Good`], but signed by the intermediate; only the leaf is served,
    /// so a client needs the intermediate in its own trust bundle.
    IntermediateLeafOnly,
}

impl ServerCertKind {
    /// Every kind, in declaration order.
    pub const ALL: [ServerCertKind; 9] = [
        Self::Good,
        Self::WrongHost,
        Self::CnOnly,
        Self::Wildcard,
        Self::IpOnly,
        Self::Expired,
        Self::OtherCa,
        Self::IntermediateChain,
        Self::IntermediateLeafOnly,
    ];

    /// The kebab-case name: `good`, `wrong-host`, `cn-only`, `wildcard`, `ip-only`, `expired`,
    /// `other-ca`, `intermediate-chain`, `intermediate-leaf-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::WrongHost => "wrong-host",
            Self::CnOnly => "cn-only",
            Self::Wildcard => "wildcard",
            Self::IpOnly => "ip-only",
            Self::Expired => "expired",
            Self::OtherCa => "other-ca",
            Self::IntermediateChain => "intermediate-chain",
            Self::IntermediateLeafOnly => "intermediate-leaf-only",
        }
    }

    /// Parses what [`ServerCertKind::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The subject common name of this kind's certificate.
    pub fn common_name(self) -> &'static str {
        match self {
            Self::WrongHost => WRONG_HOST,
            Self::Wildcard => WILDCARD,
            Self::IpOnly => IP_ONLY_CN,
            Self::Good
            | Self::CnOnly
            | Self::Expired
            | Self::OtherCa
            | Self::IntermediateChain
            | Self::IntermediateLeafOnly => "localhost",
        }
    }

    /// The subjectAltName entries of this kind's certificate (empty: no extension at all).
    pub fn subject_alt_names(self) -> Vec<SubjectAltName> {
        match self {
            Self::Good
            | Self::Expired
            | Self::OtherCa
            | Self::IntermediateChain
            | Self::IntermediateLeafOnly => vec![
                SubjectAltName::Dns("localhost"),
                SubjectAltName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                SubjectAltName::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
            Self::WrongHost => vec![SubjectAltName::Dns(WRONG_HOST)],
            Self::CnOnly => Vec::new(),
            Self::Wildcard => vec![SubjectAltName::Dns(WILDCARD)],
            Self::IpOnly => vec![SubjectAltName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))],
        }
    }

    /// Which CA signs this kind's certificate.
    pub fn issuer(self) -> IssuerKind {
        match self {
            Self::OtherCa => IssuerKind::OtherRoot,
            Self::IntermediateChain | Self::IntermediateLeafOnly => IssuerKind::Intermediate,
            Self::Good
            | Self::WrongHost
            | Self::CnOnly
            | Self::Wildcard
            | Self::IpOnly
            | Self::Expired => IssuerKind::Root,
        }
    }

    /// Whether the served chain includes the intermediate after the leaf.
    pub fn serves_intermediate(self) -> bool {
        self == Self::IntermediateChain
    }

    /// Whether the certificate is expired (all others are valid now).
    pub fn is_expired(self) -> bool {
        self == Self::Expired
    }
}

impl fmt::Display for ServerCertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One subjectAltName entry of a server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectAltName {
    /// A dNSName.
    Dns(&'static str),
    /// An iPAddress.
    Ip(IpAddr),
}

/// Whether a revocation list from [`CertFactory::crl`] is within its dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrlWindow {
    /// Issued yesterday at midnight (UTC), next update in 30 days.
    Current,
    /// Issued today at midnight, after [`CrlWindow::Current`]; next update in 30 days.
    Renewed,
    /// Its next update was yesterday at midnight.
    Expired,
    /// Issued the day after tomorrow.
    NotYetValid,
}

/// The CA that signs a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssuerKind {
    /// The root CA, the one clients trust.
    Root,
    /// The intermediate CA, signed by the root.
    Intermediate,
    /// The unrelated second root CA.
    OtherRoot,
}

/// A failure of the certificate factory; the message says what failed.
#[derive(Debug)]
pub struct CertError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CertError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What failed, without the underlying cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A CA: the parameters it was issued with (rcgen's issuer needs its subject, key identifier
/// method and key usages), its key and its certificate.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    /// The CA's private key, PKCS#8 PEM.
    fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }
}

/// A set of CAs and the certificates they issue.
///
/// Generating is cheap (ECDSA P-256, a few milliseconds); do it once per test run and issue
/// what each profile needs. Each leaf gets a fresh key pair.
pub struct CertFactory {
    root: Ca,
    intermediate: Ca,
    other_root: Ca,
    bundle: String,
}

impl fmt::Debug for CertFactory {
    /// Shows the CA certificates; the CA keys are elided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertFactory")
            .field("root", &self.root.pem)
            .field("intermediate", &self.intermediate.pem)
            .field("other_root", &self.other_root.pem)
            .field("keys", &"[elided]")
            .finish()
    }
}

/// How long a CA is valid before and after now.
const CA_BACK: Duration = Duration::days(2);
const CA_AHEAD: Duration = Duration::days(60);
/// How long a leaf is valid before and after now.
const LEAF_BACK: Duration = Duration::days(1);
const LEAF_AHEAD: Duration = Duration::days(30);
/// The expired leaf's window: from 30 days ago until yesterday.
const EXPIRED_BACK: Duration = Duration::days(30);
const EXPIRED_END: Duration = Duration::days(1);

fn new_key(what: &str) -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CertError::with_source(format!("generating the {what} key pair"), e))
}

fn random_serial(rng: &SystemRandom, what: &str) -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .map_err(|_| CertError::new(format!("drawing a serial number for the {what}")))?;
    // Positive, and never a leading zero octet that DER would strip: 16 significant bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn ia5(name: &str, what: &str) -> Result<rcgen::string::Ia5String, CertError> {
    rcgen::string::Ia5String::try_from(name)
        .map_err(|e| CertError::with_source(format!("the {what} name {name:?}"), e))
}

/// Parameters common to every certificate: a random serial, the validity window and a
/// subject with the given common name.
fn base_params(
    rng: &SystemRandom,
    what: &str,
    common_name: &str,
    organization: Option<&str>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial(rng, what)?);
    params.not_before = not_before;
    params.not_after = not_after;
    let mut dn = DistinguishedName::new();
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    Ok(params)
}

fn ca_params(
    rng: &SystemRandom,
    what: &str,
    common_name: &str,
    path_len: Option<u8>,
    now: OffsetDateTime,
) -> Result<CertificateParams, CertError> {
    let mut params = base_params(
        rng,
        what,
        common_name,
        Some(ORGANIZATION),
        now - CA_BACK,
        now + CA_AHEAD,
    )?;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn self_signed_ca(
    rng: &SystemRandom,
    what: &str,
    common_name: &str,
    now: OffsetDateTime,
) -> Result<Ca, CertError> {
    let key = new_key(what)?;
    let params = ca_params(rng, what, common_name, None, now)?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertError::with_source(format!("self-signing the {what}"), e))?;
    Ok(Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// Writes `contents` to `path`; a new file unless `force`; `mode` on unix.
fn write_file(path: &Path, contents: &str, mode: u32, force: bool) -> Result<(), CertError> {
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| CertError::with_source(format!("creating {}", path.display()), e))?;
    // The mode given at creation does not apply to a file that already existed (force).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| {
                CertError::with_source(format!("setting the mode of {}", path.display()), e)
            })?;
    }
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CertError::with_source(format!("writing {}", path.display()), e))
}

/// The file names [`CertFactory::write_dev_set`] writes, in order.
pub const DEV_SET_FILES: [&str; 7] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
    "README.txt",
];

/// A fresh 2048-bit RSA private key (PKCS#8 PEM) from `openssl genpkey`, for cloud
/// service-account keys (the token emulators check the JWTs signed with it): ring cannot
/// generate RSA keys.
pub fn rsa_key() -> Result<String, String> {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .map_err(|e| format!("openssl does not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl genpkey failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "openssl printed a key that is not PEM".into())
}

impl CertFactory {
    /// Generates the root, the intermediate (signed by the root) and the unrelated root.
    pub fn new() -> Result<Self, CertError> {
        let rng = SystemRandom::new();
        let now = OffsetDateTime::now_utc();
        let root = self_signed_ca(&rng, "root CA", ROOT_CN, now)?;
        let other_root = self_signed_ca(&rng, "other root CA", OTHER_ROOT_CN, now)?;

        let key = new_key("intermediate CA")?;
        let mut params = ca_params(&rng, "intermediate CA", INTERMEDIATE_CN, Some(0), now)?;
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &root.issuer)
            .map_err(|e| CertError::with_source("signing the intermediate CA", e))?;
        let intermediate = Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        };
        let bundle = format!("{}{}", root.pem, intermediate.pem);
        Ok(Self {
            root,
            intermediate,
            other_root,
            bundle,
        })
    }

    /// The root CA certificate (PEM), the one clients trust.
    pub fn root_pem(&self) -> &str {
        &self.root.pem
    }

    /// An unrelated root CA certificate (PEM): the "wrong CA" for clients.
    pub fn other_root_pem(&self) -> &str {
        &self.other_root.pem
    }

    /// The intermediate CA certificate (PEM), signed by the root.
    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate.pem
    }

    /// The root and the intermediate concatenated: a bundle a client may trust (with it, an
    /// [`ServerCertKind::IntermediateLeafOnly`] server verifies).
    pub fn root_and_intermediate_pem(&self) -> &str {
        &self.bundle
    }

    /// The root CA's private key (PKCS#8 PEM), for signing further test material elsewhere.
    pub fn root_key_pem(&self) -> String {
        self.root.key_pem()
    }

    fn ca(&self, which: IssuerKind) -> &Ca {
        match which {
            IssuerKind::Root => &self.root,
            IssuerKind::Intermediate => &self.intermediate,
            IssuerKind::OtherRoot => &self.other_root,
        }
    }

    /// The PEM of the CA certificate that signs `kind`'s certificate.
    pub fn issuer_pem(&self, kind: ServerCertKind) -> &str {
        &self.ca(kind.issuer()).pem
    }

    /// Issues a fresh server certificate (and key) of the given kind.
    pub fn server(&self, kind: ServerCertKind) -> Result<Pem, CertError> {
        let what = format!("{kind} server certificate");
        let rng = SystemRandom::new();
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = if kind.is_expired() {
            (now - EXPIRED_BACK, now - EXPIRED_END)
        } else {
            (now - LEAF_BACK, now + LEAF_AHEAD)
        };
        let mut params = base_params(&rng, &what, kind.common_name(), None, not_before, not_after)?;
        params.subject_alt_names = kind
            .subject_alt_names()
            .into_iter()
            .map(|san| match san {
                SubjectAltName::Dns(name) => ia5(name, &what).map(SanType::DnsName),
                SubjectAltName::Ip(ip) => Ok(SanType::IpAddress(ip)),
            })
            .collect::<Result<_, _>>()?;
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let ca = self.ca(kind.issuer());
        let mut pem = self.leaf(params, ca, &what)?;
        if kind.serves_intermediate() {
            pem.cert.push_str(&self.intermediate.pem);
        }
        Ok(pem)
    }

    /// Issues a fresh client certificate (`extendedKeyUsage clientAuth`) signed by the root,
    /// with the subject CN `common_name`: the database user name, for `cert` authentication
    /// (or `clientcert=verify-full`).
    pub fn client(&self, common_name: &str) -> Result<Pem, CertError> {
        if common_name.is_empty() {
            return Err(CertError::new(
                "a client certificate needs a common name (the database user name)",
            ));
        }
        let what = format!("client certificate for {common_name:?}");
        let rng = SystemRandom::new();
        let now = OffsetDateTime::now_utc();
        let mut params = base_params(
            &rng,
            &what,
            common_name,
            None,
            now - LEAF_BACK,
            now + LEAF_AHEAD,
        )?;
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
        self.leaf(params, &self.root, &what)
    }

    /// Completes a leaf's parameters (CA:FALSE, digitalSignature, key identifiers), draws its
    /// key and has `ca` sign it.
    fn leaf(&self, mut params: CertificateParams, ca: &Ca, what: &str) -> Result<Pem, CertError> {
        // ExplicitNoCa writes basicConstraints CA:FALSE and, with it, the subjectKeyIdentifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = new_key(what)?;
        let cert = params
            .signed_by(&key, &ca.issuer)
            .map_err(|e| CertError::with_source(format!("signing the {what}"), e))?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// A certificate revocation list (PEM) signed by `issuer`, naming the first certificate of
    /// each PEM in `revoked`, current or not as `window` says.
    pub fn crl(
        &self,
        issuer: IssuerKind,
        revoked: &[&str],
        window: CrlWindow,
    ) -> Result<String, CertError> {
        use rustls::pki_types::pem::PemObject;
        let now = OffsetDateTime::now_utc();
        // From midnight (UTC), so that two lists made in one run have the same thisUpdate:
        // OpenSSL prefers the later of two lists of an issuer.
        let midnight = now.replace_time(time::Time::MIDNIGHT);
        let (this_update, next_update) = match window {
            CrlWindow::Current => (midnight - Duration::days(1), midnight + Duration::days(30)),
            CrlWindow::Renewed => (midnight, midnight + Duration::days(30)),
            CrlWindow::Expired => (midnight - Duration::days(10), midnight - Duration::days(1)),
            CrlWindow::NotYetValid => (midnight + Duration::days(2), midnight + Duration::days(30)),
        };
        let revoked_certs = revoked
            .iter()
            .map(|pem| {
                let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
                    .map_err(|e| CertError::with_source("reading a certificate to revoke", e))?;
                let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
                    .map_err(|e| CertError::with_source("parsing a certificate to revoke", e))?;
                Ok(rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(cert.raw_serial()),
                    revocation_time: now - Duration::hours(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CertError>>()?;
        let params = rcgen::CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: random_serial(&SystemRandom::new(), "revocation list")?,
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.ca(issuer).issuer)
            .map_err(|e| CertError::with_source("signing a revocation list", e))?;
        crl.pem()
            .map_err(|e| CertError::with_source("encoding a revocation list", e))
    }

    /// Writes a development set for docker-compose and hand testing into `dir` (created if
    /// missing): `ca.crt` and `ca.key` (the root), `server.crt` and `server.key`
    /// ([`ServerCertKind::Good`]), `client.crt` and `client.key` (CN `client_cn`), and a
    /// one-line `README.txt`. Key files get mode 0600 (PostgreSQL refuses a server key readable
    /// by others), the rest 0644.
    ///
    /// Refuses, before writing anything, if any of the files exists, unless `force`.
    /// Returns the paths written, in the order of [`DEV_SET_FILES`].
    pub fn write_dev_set(
        &self,
        dir: &Path,
        client_cn: &str,
        force: bool,
    ) -> Result<Vec<PathBuf>, CertError> {
        let paths: Vec<PathBuf> = DEV_SET_FILES.iter().map(|f| dir.join(f)).collect();
        if !force {
            let existing: Vec<String> = paths
                .iter()
                .filter(|p| p.symlink_metadata().is_ok())
                .map(|p| p.display().to_string())
                .collect();
            if !existing.is_empty() {
                return Err(CertError::new(format!(
                    "refusing to overwrite {} (pass force to replace them)",
                    existing.join(", ")
                )));
            }
        }
        let server = self.server(ServerCertKind::Good)?;
        let client = self.client(client_cn)?;
        let readme = format!(
            "Throwaway development certificates written by tea-pgcloud on {}: ca.* is the test \
             root CA (trust ca.crt), server.* is valid for localhost, 127.0.0.1 and ::1 until \
             {}, client.* authenticates the database user {client_cn:?}; never use them in \
             production.\n",
            OffsetDateTime::now_utc().date(),
            (OffsetDateTime::now_utc() + LEAF_AHEAD).date(),
        );
        fs::create_dir_all(dir)
            .map_err(|e| CertError::with_source(format!("creating {}", dir.display()), e))?;
        let root_key = self.root.key_pem();
        let files: [(&str, u32); 7] = [
            (&self.root.pem, 0o644),
            (&root_key, 0o600),
            (&server.cert, 0o644),
            (&server.key, 0o600),
            (&client.cert, 0o644),
            (&client.key, 0o600),
            (&readme, 0o644),
        ];
        for (path, (text, mode)) in paths.iter().zip(files) {
            write_file(path, text, mode, force)?;
        }
        Ok(paths)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use x509_parser::prelude::*;

    use super::*;

    const DAY: i64 = 24 * 60 * 60;

    /// One factory for the whole test run, as the matrix uses it.
    fn factory() -> &'static CertFactory {
        static FACTORY: OnceLock<CertFactory> = OnceLock::new();
        FACTORY.get_or_init(|| CertFactory::new().expect("the certificate factory"))
    }

    fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM certificates")
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        let mut all = ders(pem);
        assert_eq!(all.len(), 1, "one certificate expected in {pem}");
        all.remove(0)
    }

    fn now() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    fn cn<'a>(cert: &'a X509Certificate<'_>) -> &'a str {
        let mut cns = cert.subject().iter_common_name();
        let first = cns
            .next()
            .expect("a subject CN")
            .as_str()
            .expect("a string CN");
        assert!(cns.next().is_none(), "one CN");
        first
    }

    fn ski<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
        cert.iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(KeyIdentifier(id)) => Some(*id),
                _ => None,
            })
            .expect("a subjectKeyIdentifier")
    }

    fn aki<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
        cert.iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    Some(aki.key_identifier.as_ref().expect("a keyIdentifier").0)
                }
                _ => None,
            })
    }

    /// The SANs as strings: `dns:NAME` and `ip:ADDR`; `None` without the extension.
    fn sans(cert: &X509Certificate<'_>) -> Option<Vec<String>> {
        let ext = cert.subject_alternative_name().expect("a valid SAN")?;
        assert!(!ext.critical, "SAN is not critical when the subject is set");
        Some(
            ext.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => format!("dns:{d}"),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => format!("ip:{}", IpAddr::from(<[u8; 4]>::try_from(*b).unwrap())),
                        16 => format!("ip:{}", IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
                        n => panic!("an IP SAN of {n} bytes"),
                    },
                    other => panic!("unexpected SAN {other:?}"),
                })
                .collect(),
        )
    }

    fn expected_sans(kind: ServerCertKind) -> Option<Vec<String>> {
        let v = kind.subject_alt_names();
        (!v.is_empty()).then(|| {
            v.iter()
                .map(|s| match s {
                    SubjectAltName::Dns(d) => format!("dns:{d}"),
                    SubjectAltName::Ip(ip) => format!("ip:{ip}"),
                })
                .collect()
        })
    }

    fn check_ca(cert: &X509Certificate<'_>, path_len: Option<u32>) {
        assert_eq!(cert.version(), X509Version::V3);
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
        assert!(bc.critical);
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, path_len);
        let ku = cert.key_usage().unwrap().expect("keyUsage");
        assert!(ku.critical);
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature() && !ku.value.key_encipherment());
        assert!(
            cert.extended_key_usage().unwrap().is_none(),
            "no EKU on a CA"
        );
        assert_eq!(ski(cert).len(), 20);
        let v = cert.validity();
        assert!(v.not_before.timestamp() <= now() - 2 * DAY + 60);
        assert!(v.not_after.timestamp() >= now() + 59 * DAY);
    }

    /// The leaf checks shared by server and client certificates.
    fn check_leaf(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) {
        assert_eq!(cert.version(), X509Version::V3);
        assert_eq!(cert.issuer(), issuer.subject());
        assert_eq!(aki(cert), Some(ski(issuer)), "AKI names the issuer's key");
        assert_eq!(ski(cert).len(), 20);
        let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
        assert!(bc.critical);
        assert!(!bc.value.ca);
        let ku = cert.key_usage().unwrap().expect("keyUsage");
        assert!(ku.critical);
        assert!(ku.value.digital_signature());
        assert!(!ku.value.key_cert_sign() && !ku.value.crl_sign());
        let serial = cert.raw_serial();
        assert_eq!(serial.len(), 16, "16-byte positive serial");
        assert!(serial[0] & 0x80 == 0);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in ServerCertKind::ALL {
            assert_eq!(ServerCertKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        let mut names: Vec<_> = ServerCertKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ServerCertKind::ALL.len());
        assert_eq!(ServerCertKind::parse("Good"), None);
    }

    #[test]
    fn cas_are_what_they_claim() {
        let f = factory();
        let root_der = der(f.root_pem());
        let other_der = der(f.other_root_pem());
        let inter_der = der(f.intermediate_pem());
        let (_, root) = X509Certificate::from_der(&root_der).unwrap();
        let (_, other) = X509Certificate::from_der(&other_der).unwrap();
        let (_, inter) = X509Certificate::from_der(&inter_der).unwrap();
        check_ca(&root, None);
        check_ca(&other, None);
        check_ca(&inter, Some(0));
        assert_eq!(cn(&root), ROOT_CN);
        assert_eq!(cn(&other), OTHER_ROOT_CN);
        assert_eq!(cn(&inter), INTERMEDIATE_CN);
        assert_eq!(root.issuer(), root.subject(), "root is self-issued");
        assert_eq!(other.issuer(), other.subject());
        assert_ne!(root.subject(), other.subject());
        assert_ne!(ski(&root), ski(&other));
        assert_eq!(inter.issuer(), root.subject());
        assert_eq!(aki(&inter), Some(ski(&root)));
        assert_eq!(
            ders(f.root_and_intermediate_pem()),
            vec![root_der.clone(), inter_der.clone()]
        );
        // The root key is the root certificate's key.
        let root_key = KeyPair::from_pem(&f.root_key_pem()).unwrap();
        assert_eq!(
            root_key.public_key_raw(),
            root.public_key().subject_public_key.data.as_ref()
        );
    }

    #[test]
    fn server_certificates_are_what_they_claim() {
        let f = factory();
        let t = now();
        for kind in ServerCertKind::ALL {
            let pem = f.server(kind).unwrap();
            let chain = ders(&pem.cert);
            let issuer_der = der(f.issuer_pem(kind));
            let (_, issuer) = X509Certificate::from_der(&issuer_der).unwrap();
            let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
            if kind == ServerCertKind::IntermediateChain {
                assert_eq!(chain.len(), 2, "{kind}: leaf + intermediate");
                assert_eq!(chain[1], der(f.intermediate_pem()));
            } else {
                assert_eq!(chain.len(), 1, "{kind}: leaf only");
            }
            check_leaf(&leaf, &issuer);
            assert_eq!(cn(&leaf), kind.common_name(), "{kind}");
            assert_eq!(sans(&leaf), expected_sans(kind), "{kind}");
            let eku = leaf.extended_key_usage().unwrap().expect("EKU");
            assert!(eku.value.server_auth && !eku.value.client_auth && !eku.value.any);
            let v = leaf.validity();
            let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
            if kind.is_expired() {
                assert!((nb - (t - 30 * DAY)).abs() < 60, "{kind}: not_before");
                assert!((na - (t - DAY)).abs() < 60, "{kind}: not_after");
                assert!(!leaf.validity().is_valid());
            } else {
                assert!((nb - (t - DAY)).abs() < 60, "{kind}: not_before");
                assert!((na - (t + 30 * DAY)).abs() < 60, "{kind}: not_after");
                assert!(leaf.validity().is_valid());
                // Inside the issuer's window.
                assert!(issuer.validity().not_before.timestamp() <= nb);
                assert!(issuer.validity().not_after.timestamp() >= na);
            }
            // The key is PKCS#8 and belongs to the certificate.
            assert!(pem.key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            assert!(matches!(
                PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
                PrivateKeyDer::Pkcs8(_)
            ));
            let key = KeyPair::from_pem(&pem.key).unwrap();
            assert_eq!(
                key.public_key_raw(),
                leaf.public_key().subject_public_key.data.as_ref()
            );
            assert!(!format!("{pem:?}").contains("PRIVATE KEY"));
        }
    }

    #[test]
    fn client_certificate_is_what_it_claims() {
        let f = factory();
        let pem = f.client("tea_user").unwrap();
        let leaf_der = der(&pem.cert);
        let root_der = der(f.root_pem());
        let (_, root) = X509Certificate::from_der(&root_der).unwrap();
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        check_leaf(&leaf, &root);
        assert_eq!(cn(&leaf), "tea_user");
        assert_eq!(sans(&leaf), None);
        let eku = leaf.extended_key_usage().unwrap().expect("EKU");
        assert!(eku.value.client_auth && !eku.value.server_auth);
        let err = f.client("").unwrap_err();
        assert!(err.to_string().contains("common name"), "{err}");
    }

    // --- OpenSSL -------------------------------------------------------------------------

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(f: &CertFactory) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let files = Self { dir };
            files.put("root.pem", f.root_pem());
            files.put("other.pem", f.other_root_pem());
            files.put("inter.pem", f.intermediate_pem());
            files.put("bundle.pem", f.root_and_intermediate_pem());
            files
        }

        fn put(&self, name: &str, text: &str) -> String {
            let path = self.dir.path().join(name);
            fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_str().unwrap().to_owned()
        }
    }

    /// Runs openssl; returns success and stdout + stderr.
    fn openssl(args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `openssl verify -x509_strict -purpose PURPOSE -CAfile CA [-untrusted U] LEAF`.
    fn verify(purpose: &str, ca: &str, untrusted: Option<&str>, leaf: &str) -> (bool, String) {
        let mut args = vec!["verify", "-x509_strict", "-purpose", purpose, "-CAfile", ca];
        if let Some(u) = untrusted {
            args.extend(["-untrusted", u]);
        }
        args.push(leaf);
        openssl(&args)
    }

    fn assert_verifies(r: (bool, String), what: &str) {
        assert!(r.0 && r.1.contains(": OK"), "{what}: {}", r.1);
    }

    fn assert_fails(r: (bool, String), reason: &str, what: &str) {
        assert!(
            !r.0 && r.1.contains(reason),
            "{what}: wanted {reason:?}: {}",
            r.1
        );
    }

    /// `openssl x509 -checkhost` / `-checkip`: whether the name matches.
    fn matches(leaf: &str, name: &str) -> bool {
        let flag = if name.parse::<IpAddr>().is_ok() {
            "-checkip"
        } else {
            "-checkhost"
        };
        let (ok, out) = openssl(&["x509", "-in", leaf, "-noout", flag, name]);
        assert!(ok, "{out}");
        if out.contains("does NOT match") {
            false
        } else {
            assert!(out.contains("does match"), "{out}");
            true
        }
    }

    fn same_public_key(cert: &str, key: &str) {
        let (ok1, from_cert) = openssl(&["x509", "-in", cert, "-noout", "-pubkey"]);
        let (ok2, from_key) = openssl(&["pkey", "-in", key, "-pubout"]);
        assert!(ok1 && ok2, "{from_cert}{from_key}");
        assert!(from_cert.contains("BEGIN PUBLIC KEY"));
        assert_eq!(from_cert, from_key, "{cert} and {key}");
    }

    const UNKNOWN_ISSUER: &str = "unable to get local issuer certificate";

    #[test]
    fn openssl_verifies_server_chains() {
        let f = factory();
        let files = Files::new(f);
        let (root, other, inter, bundle) = (
            files.path("root.pem"),
            files.path("other.pem"),
            files.path("inter.pem"),
            files.path("bundle.pem"),
        );
        for kind in ServerCertKind::ALL {
            let pem = f.server(kind).unwrap();
            let served = files.put(&format!("{kind}.crt"), &pem.cert);
            let key = files.put(&format!("{kind}.key"), &pem.key);
            let leaf = files.put(&format!("{kind}.leaf.crt"), &first_pem(&pem.cert));
            same_public_key(&leaf, &key);
            let what = kind.as_str();
            match kind {
                ServerCertKind::Good
                | ServerCertKind::WrongHost
                | ServerCertKind::CnOnly
                | ServerCertKind::Wildcard
                | ServerCertKind::IpOnly => {
                    assert_verifies(verify("sslserver", &root, None, &leaf), what);
                    assert_fails(
                        verify("sslserver", &other, None, &leaf),
                        UNKNOWN_ISSUER,
                        what,
                    );
                }
                ServerCertKind::Expired => {
                    assert_fails(
                        verify("sslserver", &root, None, &leaf),
                        "certificate has expired",
                        what,
                    );
                    assert_fails(
                        verify("sslserver", &other, None, &leaf),
                        UNKNOWN_ISSUER,
                        what,
                    );
                    // Expired, and nothing else wrong with it.
                    let (ok, out) = openssl(&[
                        "verify",
                        "-x509_strict",
                        "-purpose",
                        "sslserver",
                        "-no_check_time",
                        "-CAfile",
                        &root,
                        &leaf,
                    ]);
                    assert!(ok, "{out}");
                }
                ServerCertKind::OtherCa => {
                    assert_fails(
                        verify("sslserver", &root, None, &leaf),
                        UNKNOWN_ISSUER,
                        what,
                    );
                    assert_verifies(verify("sslserver", &other, None, &leaf), what);
                }
                ServerCertKind::IntermediateChain => {
                    // As in the handshake: the served chain supplies the intermediate.
                    assert_verifies(verify("sslserver", &root, Some(&served), &leaf), what);
                    assert_fails(
                        verify("sslserver", &other, Some(&served), &leaf),
                        UNKNOWN_ISSUER,
                        what,
                    );
                    assert_fails(
                        verify("sslserver", &root, None, &leaf),
                        UNKNOWN_ISSUER,
                        what,
                    );
                }
                ServerCertKind::IntermediateLeafOnly => {
                    // The server serves no chain: the root alone is not enough.
                    assert_fails(
                        verify("sslserver", &root, None, &leaf),
                        UNKNOWN_ISSUER,
                        what,
                    );
                    assert_verifies(verify("sslserver", &root, Some(&inter), &leaf), what);
                    assert_verifies(verify("sslserver", &bundle, None, &leaf), what);
                    assert_fails(
                        verify("sslserver", &other, Some(&inter), &leaf),
                        UNKNOWN_ISSUER,
                        what,
                    );
                }
            }
            // A server certificate is no client certificate.
            if kind == ServerCertKind::Good {
                assert_fails(
                    verify("sslclient", &root, None, &leaf),
                    "unsuitable certificate purpose",
                    what,
                );
            }
        }
    }

    /// The first PEM block of `pem`.
    fn first_pem(pem: &str) -> String {
        const END: &str = "-----END CERTIFICATE-----\n";
        let end = pem.find(END).expect("a PEM certificate") + END.len();
        pem[..end].to_owned()
    }

    #[test]
    fn openssl_checks_host_names() {
        let f = factory();
        let files = Files::new(f);
        let good_like = [
            ServerCertKind::Good,
            ServerCertKind::Expired,
            ServerCertKind::OtherCa,
            ServerCertKind::IntermediateChain,
            ServerCertKind::IntermediateLeafOnly,
        ];
        for kind in ServerCertKind::ALL {
            let pem = f.server(kind).unwrap();
            let leaf = files.put(&format!("{kind}.leaf.crt"), &first_pem(&pem.cert));
            let yes = |name: &str| assert!(matches(&leaf, name), "{kind} should match {name}");
            let no = |name: &str| assert!(!matches(&leaf, name), "{kind} should not match {name}");
            if good_like.contains(&kind) {
                yes("localhost");
                yes("127.0.0.1");
                yes("::1");
                no("wrong.example.com");
                no("127.0.0.2");
                continue;
            }
            match kind {
                ServerCertKind::WrongHost => {
                    yes(WRONG_HOST);
                    no("localhost");
                    no("127.0.0.1");
                }
                ServerCertKind::CnOnly => {
                    // OpenSSL falls back to the CN when there is no dNSName SAN; libpq does
                    // the same, webpki never does.
                    yes("localhost");
                    no("127.0.0.1");
                    no("other.localhost");
                }
                ServerCertKind::Wildcard => {
                    yes(WILDCARD_MATCH);
                    no("tea.test");
                    no("a.db.tea.test");
                    no("localhost");
                }
                ServerCertKind::IpOnly => {
                    yes("127.0.0.1");
                    no("::1");
                    no("localhost");
                }
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn openssl_verifies_client_certificates() {
        let f = factory();
        let files = Files::new(f);
        let pem = f.client("postgres").unwrap();
        let cert = files.put("client.crt", &pem.cert);
        let key = files.put("client.key", &pem.key);
        same_public_key(&cert, &key);
        assert_verifies(
            verify("sslclient", &files.path("root.pem"), None, &cert),
            "client",
        );
        assert_fails(
            verify("sslclient", &files.path("other.pem"), None, &cert),
            UNKNOWN_ISSUER,
            "client",
        );
        assert_fails(
            verify("sslserver", &files.path("root.pem"), None, &cert),
            "unsuitable certificate purpose",
            "client as server",
        );
        let (ok, subject) = openssl(&["x509", "-in", &cert, "-noout", "-subject"]);
        assert!(ok && subject.trim() == "subject=CN = postgres", "{subject}");
    }

    // --- webpki --------------------------------------------------------------------------

    static ALGS: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm] = &[
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::ECDSA_P384_SHA384,
        webpki::ring::ED25519,
    ];

    fn webpki_verify(
        leaf: &CertificateDer<'_>,
        anchor_pem: &str,
        intermediates: &[CertificateDer<'_>],
        usage: webpki::KeyUsage,
    ) -> Result<(), webpki::Error> {
        let anchor_der = der(anchor_pem);
        let anchors = [webpki::anchor_from_trusted_cert(&anchor_der)?];
        let ee = webpki::EndEntityCert::try_from(leaf)?;
        ee.verify_for_usage(
            ALGS,
            &anchors,
            intermediates,
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .map(|_| ())
    }

    fn name_ok(leaf: &CertificateDer<'_>, name: &str) -> bool {
        let ee = webpki::EndEntityCert::try_from(leaf).unwrap();
        let name = ServerName::try_from(name).unwrap();
        ee.verify_is_valid_for_subject_name(&name).is_ok()
    }

    #[test]
    fn webpki_verifies_server_chains() {
        let f = factory();
        let server = webpki::KeyUsage::server_auth;
        for kind in ServerCertKind::ALL {
            let chain = ders(&f.server(kind).unwrap().cert);
            let leaf = &chain[0];
            let served = &chain[1..];
            let against_root = webpki_verify(leaf, f.root_pem(), served, server());
            let against_other = webpki_verify(leaf, f.other_root_pem(), served, server());
            match kind {
                ServerCertKind::Expired => {
                    assert!(
                        matches!(against_root, Err(webpki::Error::CertExpired { .. })),
                        "{against_root:?}"
                    );
                    // webpki checks the leaf's validity before it looks for the issuer.
                    assert!(
                        matches!(against_other, Err(webpki::Error::CertExpired { .. })),
                        "{against_other:?}"
                    );
                    continue;
                }
                ServerCertKind::OtherCa => {
                    assert_eq!(against_root, Err(webpki::Error::UnknownIssuer));
                    assert_eq!(against_other, Ok(()));
                    continue;
                }
                ServerCertKind::IntermediateLeafOnly => {
                    assert_eq!(against_root, Err(webpki::Error::UnknownIssuer));
                    let inter = der(f.intermediate_pem());
                    assert_eq!(
                        webpki_verify(leaf, f.root_pem(), &[inter], server()),
                        Ok(())
                    );
                }
                _ => assert_eq!(against_root, Ok(()), "{kind}"),
            }
            assert_eq!(against_other, Err(webpki::Error::UnknownIssuer), "{kind}");
        }
    }

    #[test]
    fn webpki_checks_names_and_usages() {
        let f = factory();
        let leaf = |kind| ders(&f.server(kind).unwrap().cert).remove(0);
        let good = leaf(ServerCertKind::Good);
        assert!(name_ok(&good, "localhost"));
        assert!(name_ok(&good, "127.0.0.1"));
        assert!(name_ok(&good, "::1"));
        assert!(!name_ok(&good, "wrong.example.com"));
        let wrong = leaf(ServerCertKind::WrongHost);
        assert!(name_ok(&wrong, WRONG_HOST));
        assert!(!name_ok(&wrong, "localhost"));
        // webpki never looks at the CN.
        let cn_only = leaf(ServerCertKind::CnOnly);
        assert!(!name_ok(&cn_only, "localhost"));
        let wildcard = leaf(ServerCertKind::Wildcard);
        assert!(name_ok(&wildcard, WILDCARD_MATCH));
        assert!(!name_ok(&wildcard, "tea.test"));
        assert!(!name_ok(&wildcard, "a.db.tea.test"));
        let ip_only = leaf(ServerCertKind::IpOnly);
        assert!(name_ok(&ip_only, "127.0.0.1"));
        assert!(!name_ok(&ip_only, "localhost"));

        // Client certificates: clientAuth, not serverAuth.
        let client = der(&f.client("postgres").unwrap().cert);
        assert_eq!(
            webpki_verify(&client, f.root_pem(), &[], webpki::KeyUsage::client_auth()),
            Ok(())
        );
        assert!(
            webpki_verify(&client, f.root_pem(), &[], webpki::KeyUsage::server_auth()).is_err()
        );
        assert!(webpki_verify(&good, f.root_pem(), &[], webpki::KeyUsage::client_auth()).is_err());
    }

    #[test]
    fn rustls_accepts_chain_and_key() {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        for kind in ServerCertKind::ALL {
            let pem = factory().server(kind).unwrap();
            let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap();
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(ders(&pem.cert), key)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    // --- dev set -------------------------------------------------------------------------

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn dev_set() {
        let f = factory();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let written = f.write_dev_set(&dir, "tea", false).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, DEV_SET_FILES);
        #[cfg(unix)]
        for path in &written {
            let want = if path.extension().unwrap() == "key" {
                0o600
            } else {
                0o644
            };
            assert_eq!(mode(path), want, "{}", path.display());
        }
        let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        assert_eq!(fs::read_to_string(p("ca.crt")).unwrap(), f.root_pem());
        same_public_key(&p("ca.crt"), &p("ca.key"));
        same_public_key(&p("server.crt"), &p("server.key"));
        same_public_key(&p("client.crt"), &p("client.key"));
        assert_verifies(
            verify("sslserver", &p("ca.crt"), None, &p("server.crt")),
            "server",
        );
        assert_verifies(
            verify("sslclient", &p("ca.crt"), None, &p("client.crt")),
            "client",
        );
        assert!(matches(&p("server.crt"), "localhost"));
        let readme = fs::read_to_string(p("README.txt")).unwrap();
        assert_eq!(readme.lines().count(), 1, "{readme}");

        // No overwriting without force; nothing is touched.
        let before = fs::read_to_string(p("server.crt")).unwrap();
        let err = f.write_dev_set(&dir, "tea", false).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert!(err.to_string().contains("server.key"), "{err}");
        assert_eq!(fs::read_to_string(p("server.crt")).unwrap(), before);
        // One existing file is enough to refuse.
        let other = tmp.path().join("partial");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("client.key"), "x").unwrap();
        assert!(f.write_dev_set(&other, "tea", false).is_err());
        assert!(!other.join("ca.crt").exists());

        // With force: replaced, and a loosened key mode is tightened again.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(p("server.key"), fs::Permissions::from_mode(0o644)).unwrap();
        }
        f.write_dev_set(&dir, "tea", true).unwrap();
        assert_ne!(fs::read_to_string(p("server.crt")).unwrap(), before);
        #[cfg(unix)]
        assert_eq!(mode(&dir.join("server.key")), 0o600);
        same_public_key(&p("server.crt"), &p("server.key"));
    }
}

//! Certificate revocation lists, checked as libpq has OpenSSL check them.
//!
//! libpq (`fe-secure-openssl.c`, `initialize_SSL`) reads revocation lists only when it loaded a
//! root certificate file (never with `sslrootcert=system`): from `sslcrl`, from the hashed
//! directories of `sslcrldir`, or, when neither is set, from `~/.postgresql/root.crl`. It hands
//! them to `X509_STORE_load_locations`; only when that succeeds does it set
//! `X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL`, and a file that cannot be read is
//! silently ignored ("we do not require CRL"). Under those flags OpenSSL
//! (`x509_vfy.c`, `check_revocation`) checks every certificate of the verified chain, the
//! self-signed root included: each needs a revocation list from its issuer, and the chosen list
//! must be within its dates, signed by the issuer (whose key usage, if present, allows CRL
//! signing), and must not list the certificate. This module repeats those rules:
//!
//! - the file is read as OpenSSL's `X509_load_cert_crl_file` reads it: every certificate and
//!   revocation list in it, any malformed block or none at all failing the whole file (then
//!   nothing is checked); its certificates become trusted roots, as in OpenSSL;
//! - a directory (`:`-separated list) is looked up as `X509_LOOKUP_hash_dir` does, by the
//!   issuer's name hash ([`name_hash`], OpenSSL's `X509_NAME_hash_ex`): files `HASH.r0`,
//!   `HASH.r1`, ... up to the first missing one. A directory setting turns checking on whatever
//!   the directory holds, as in OpenSSL;
//! - OpenSSL's store holds the file's lists, then what each directory lookup adds (for an
//!   issuer's hash, one directory after the other until the store holds a list of that
//!   issuer), each list once; among the lists of one issuer (same canonical name, and, when the
//!   list names its issuer's key identifier, that key) one within its dates wins over one that
//!   is not, and of two alike a later `thisUpdate` wins, else the first in store order
//!   (`get_crl_sk`).
//!
//! Not repeated: delta lists, issuing distribution points, indirect lists and reason codes
//! (every list is taken as a complete list of its issuer), and certificates kept in a hashed
//! directory (OpenSSL would also take `HASH.0` files there as roots).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate, X509Name};

/// The revocation lists of one connection, when libpq would check them.
#[derive(Debug, Default, Clone)]
pub(super) struct Crls {
    /// The lists of the `sslcrl` file, in file order: in OpenSSL's store from the start.
    file: Vec<Vec<u8>>,
    /// Per `sslcrldir` directory, in order: each issuer hash's lists (from `HASH.r0`,
    /// `HASH.r1`, ...), which OpenSSL adds to its store when it looks that hash up.
    dirs: Vec<BTreeMap<String, Vec<Vec<u8>>>>,
}

/// What reading the revocation list settings came to.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    /// `Some` when certificates are checked against revocation lists.
    pub crls: Option<Crls>,
    /// Certificates found in the `sslcrl` file: OpenSSL adds them to the trusted roots.
    pub roots: Vec<CertificateDer<'static>>,
}

/// Reads `file` and `dirs` (already libpq's choice: `sslcrl`, `sslcrldir`, or the default
/// file) as libpq hands them to OpenSSL.
pub(super) fn load(file: Option<&str>, dirs: Option<&str>) -> Loaded {
    let mut crls = Crls::default();
    let mut roots = Vec::new();
    if let Some(file) = file {
        match read_file(Path::new(file)) {
            Some((certs, lists)) => {
                roots = certs;
                crls.file = lists;
            }
            // X509_STORE_load_locations failed: libpq sets no flag and checks nothing.
            None => return Loaded::default(),
        }
    }
    let dirs: Vec<&str> = dirs
        .map(|d| d.split(':').filter(|d| !d.is_empty()).collect())
        .unwrap_or_default();
    if file.is_none() && dirs.is_empty() {
        return Loaded::default();
    }
    crls.dirs = dirs
        .into_iter()
        .map(|dir| read_hashed_dir(Path::new(dir)))
        .collect();
    Loaded {
        crls: Some(crls),
        roots,
    }
}

/// The certificates and revocation lists of a PEM file; `None` when OpenSSL would fail to load
/// it (unreadable, a malformed block, or neither a certificate nor a list in it).
fn read_file(path: &Path) -> Option<(Vec<CertificateDer<'static>>, Vec<Vec<u8>>)> {
    use rustls::pki_types::pem::SectionKind;
    let bytes = super::read_pem_file(&path.to_string_lossy()).ok()?;
    let mut reader = std::io::Cursor::new(bytes);
    let (mut certs, mut crls) = (Vec::new(), Vec::new());
    loop {
        match rustls::pki_types::pem::from_buf(&mut reader) {
            Ok(Some((SectionKind::Certificate, der))) => {
                X509Certificate::from_der(&der).ok()?;
                certs.push(CertificateDer::from(der));
            }
            Ok(Some((SectionKind::Crl, der))) => {
                CertificateRevocationList::from_der(&der).ok()?;
                crls.push(der);
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    (!certs.is_empty() || !crls.is_empty()).then_some((certs, crls))
}

/// What OpenSSL's hash directory lookup would load from `dir`, per issuer hash: `HASH.r0`,
/// `HASH.r1`, ... until a file is missing or holds no list, every list in them.
fn read_hashed_dir(dir: &Path) -> BTreeMap<String, Vec<Vec<u8>>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    let hashes: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| {
            let hash = name.strip_suffix(".r0")?;
            (hash.len() == 8
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| hash.to_string())
        })
        .collect();
    let mut found = BTreeMap::new();
    for hash in hashes {
        let mut lists = Vec::new();
        for index in 0u32.. {
            match read_file(&dir.join(format!("{hash}.r{index}"))) {
                Some((_, crls)) if !crls.is_empty() => lists.extend(crls),
                _ => break,
            }
        }
        found.insert(hash, lists);
    }
    found
}

/// Why a certificate of the chain failed the revocation check, in OpenSSL's words
/// (`X509_verify_cert_error_string`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Revoked(pub &'static str);

impl Crls {
    /// Checks every certificate of `chain` (leaf first, the trusted root last) against the
    /// lists of its issuer (the next certificate; a self-signed root is its own issuer).
    pub(super) fn check(&self, chain: &[CertificateDer<'_>], now: i64) -> Result<(), Revoked> {
        let parsed: Vec<X509Certificate<'_>> = chain
            .iter()
            .map(|der| X509Certificate::from_der(der.as_ref()).map(|(_, c)| c))
            .collect::<Result<_, _>>()
            .map_err(|_| Revoked("unable to decode issuer public key"))?;
        // OpenSSL's store: the file's lists first, then what each lookup adds, in order, a list
        // already there (the same bytes) not added again. Each list is parsed once, with its
        // issuer's canonical name.
        let mut store: Vec<Held<'_>> = Vec::new();
        for der in &self.file {
            hold(&mut store, der);
        }
        let mut looked_up: BTreeSet<(usize, String)> = BTreeSet::new();
        for (depth, cert) in parsed.iter().enumerate() {
            let issuer = parsed.get(depth + 1).unwrap_or(cert);
            let name = canonical(cert.issuer());
            let hash = format!("{:08x}", name_hash(cert.issuer()));
            // X509_STORE_CTX_get1_crls always asks the directory lookup, which loads the hash's
            // files of one directory after the other until the store holds a list of that
            // issuer.
            for (index, dir) in self.dirs.iter().enumerate() {
                if looked_up.insert((index, hash.clone()))
                    && let Some(lists) = dir.get(&hash)
                {
                    for der in lists {
                        hold(&mut store, der);
                    }
                }
                if store.iter().any(|held| held.issuer == name) {
                    break;
                }
            }
            let of_issuer = store
                .iter()
                .filter(|held| held.issuer == name)
                .map(|held| &held.crl);
            check_one(cert, issuer, of_issuer, now)?;
        }
        Ok(())
    }
}

/// A list in the store: its bytes, parsed, and its issuer's canonical name.
struct Held<'a> {
    der: &'a [u8],
    crl: CertificateRevocationList<'a>,
    issuer: Vec<u8>,
}

/// Adds `der` to the store unless the same bytes are there (or it does not parse, which the
/// loading already ruled out).
fn hold<'a>(store: &mut Vec<Held<'a>>, der: &'a [u8]) {
    if store.iter().any(|held| held.der == der) {
        return;
    }
    if let Ok((_, crl)) = CertificateRevocationList::from_der(der) {
        let issuer = canonical(crl.issuer());
        store.push(Held { der, crl, issuer });
    }
}

/// Checks `cert` against `lists`, the store's lists named for its issuer (`issuer`, whose key
/// signs them), in store order.
fn check_one<'a>(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    lists: impl Iterator<Item = &'a CertificateRevocationList<'a>>,
    now: i64,
) -> Result<(), Revoked> {
    let issuer_key_id = subject_key_id(issuer);
    // OpenSSL's get_crl_sk: the lists of the issuer (by name, and by key identifier when the
    // list names one), in store order; a list within its dates scores higher; of equal
    // scores, a later thisUpdate replaces the one chosen, else the first stays.
    let mut chosen: Option<(&CertificateRevocationList<'_>, bool)> = None;
    for crl in lists.filter(|crl| match (authority_key_id(crl), issuer_key_id) {
        (Some(named), Some(actual)) => named == actual,
        _ => true,
    }) {
        let current = time_error(crl, now).is_none();
        let better = match chosen {
            None => true,
            Some((_, best_current)) if current != best_current => current,
            Some((best, _)) => crl.last_update().timestamp() > best.last_update().timestamp(),
        };
        if better {
            chosen = Some((crl, current));
        }
    }
    let (chosen, _) = chosen.ok_or(Revoked("unable to get certificate CRL"))?;
    if let Ok(Some(usage)) = issuer.key_usage()
        && !usage.value.crl_sign()
    {
        return Err(Revoked("key usage does not include CRL signing"));
    }
    if let Some(error) = time_error(chosen, now) {
        return Err(Revoked(error));
    }
    chosen
        .verify_signature(issuer.public_key())
        .map_err(|_| Revoked("CRL signature failure"))?;
    if chosen
        .iter_revoked_certificates()
        .any(|revoked| revoked.raw_serial() == cert.raw_serial())
    {
        return Err(Revoked("certificate revoked"));
    }
    Ok(())
}

/// OpenSSL's `check_crl_time`: not before `thisUpdate`, not after `nextUpdate` when it is set.
fn time_error(crl: &CertificateRevocationList<'_>, now: i64) -> Option<&'static str> {
    if crl.last_update().timestamp() > now {
        return Some("CRL is not yet valid");
    }
    if crl.next_update().is_some_and(|next| next.timestamp() < now) {
        return Some("CRL has expired");
    }
    None
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
            _ => None,
        })
}

fn authority_key_id<'a>(crl: &'a CertificateRevocationList<'_>) -> Option<&'a [u8]> {
    crl.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })
}

fn sha1(bytes: &[u8]) -> Vec<u8> {
    // The name hash's digest (OpenSSL's X509_NAME_hash_ex).
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .to_vec()
}

/// OpenSSL's `X509_NAME_hash_ex`: the first four bytes of the SHA-1 of the canonical encoding,
/// little-endian; the name of the files in a hashed directory (`%08lx`).
pub(super) fn name_hash(name: &X509Name<'_>) -> u32 {
    let digest = sha1(&canonical(name));
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// OpenSSL's canonical name encoding (`x509_name_canon`): each relative distinguished name as
/// a DER `SET`, one after the other with no outer `SEQUENCE`; string values turned to UTF-8,
/// trimmed, with runs of white space collapsed to one space and ASCII letters lowercased, and
/// encoded as `UTF8String`; other values as they were. Names that compare equal in OpenSSL
/// (`X509_NAME_cmp`) have the same canonical encoding.
fn canonical(name: &X509Name<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for rdn in name.iter() {
        let mut entries: Vec<Vec<u8>> = rdn
            .iter()
            .map(|ava| {
                let value = ava.attr_value();
                let tag = value.header.tag().0;
                let universal = value.header.class() == x509_parser::asn1_rs::Class::Universal
                    && !value.header.constructed();
                let value_der = match to_utf8(tag, value.data).filter(|_| universal) {
                    Some(text) => der(0x0c, canonical_text(&text).as_bytes()),
                    None => der_with_header(value.header.raw_tag(), tag, value.data),
                };
                let mut body = der(0x06, ava.attr_type().as_bytes());
                body.extend(value_der);
                der(0x30, &body)
            })
            .collect();
        // DER orders the members of a SET OF by their encodings.
        entries.sort();
        out.extend(der(0x31, &entries.concat()));
    }
    out
}

/// A string value as UTF-8, for the string types OpenSSL canonicalises (`ASN1_MASK_CANON`);
/// `None` for other types or a value that does not decode.
fn to_utf8(tag: u32, data: &[u8]) -> Option<String> {
    match tag {
        // UTF8String
        12 => String::from_utf8(data.to_vec()).ok(),
        // PrintableString, T61String, IA5String, VisibleString: one byte per character.
        19 | 20 | 22 | 26 => Some(data.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UCS-2 big-endian.
        30 => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UCS-4 big-endian.
        28 => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// `asn1_string_canon`: leading and trailing white space dropped, inner runs of it turned to
/// one space, ASCII letters lowercased; bytes outside ASCII kept.
fn canonical_text(text: &str) -> String {
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r');
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.trim_matches(space).chars() {
        if space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            in_space = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A DER element with a one-byte tag.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A value kept as it was: its own identifier octets when the parser kept them, else a
/// universal primitive tag.
fn der_with_header(raw_tag: Option<&[u8]>, tag: u32, content: &[u8]) -> Vec<u8> {
    let mut out = match raw_tag {
        Some(raw) => raw.to_vec(),
        None => vec![u8::try_from(tag).unwrap_or(0x04)],
    };
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_canonicalised_as_openssl_does() {
        assert_eq!(canonical_text("  Tea   PG\tCloud \n"), "tea pg cloud");
        assert_eq!(canonical_text("ÄBC  Déf"), "Äbc déf");
        assert_eq!(canonical_text(""), "");
        assert_eq!(canonical_text(" \t "), "");
    }

    #[test]
    fn lengths_are_der() {
        assert_eq!(der(0x04, &[]), vec![0x04, 0]);
        assert_eq!(der(0x04, &[0; 127])[..2], [0x04, 127]);
        assert_eq!(der(0x04, &[0; 128])[..3], [0x04, 0x81, 128]);
        assert_eq!(der(0x04, &[0; 300])[..4], [0x04, 0x82, 1, 44]);
    }

    #[test]
    fn string_types_decode() {
        assert_eq!(to_utf8(30, &[0, b'A', 0x00, 0xe9]).as_deref(), Some("Aé"));
        assert_eq!(to_utf8(28, &[0, 0, 0, b'x']).as_deref(), Some("x"));
        assert_eq!(to_utf8(19, b"Ab").as_deref(), Some("Ab"));
        assert_eq!(to_utf8(20, &[0xe9]).as_deref(), Some("é"));
        assert_eq!(to_utf8(30, &[0]), None);
        assert_eq!(to_utf8(2, &[1]), None);
    }

    /// The name hash of certificates with awkward subjects (case, white space, several values
    /// in one RDN, UTF-8, a non-string attribute), against `openssl x509 -subject_hash`.
    #[test]
    fn name_hashes_match_openssl() {
        let subjects = [
            "/CN=tea-pgcloud test root CA/O=tea-pgcloud conformance",
            "/CN=  Mixed   CASE\tName  /O=Org",
            "/O=a+OU=b+CN=C/C=DE",
            "/CN=Grüße Ümlaut/O=ÄÖÜ",
            "/CN=x/emailAddress=Admin@Example.COM",
            "/DC=example/DC=COM/CN=dc",
        ];
        let dir = tempfile::tempdir().expect("a directory");
        for (i, subject) in subjects.iter().enumerate() {
            let key = dir.path().join(format!("{i}.key"));
            let cert = dir.path().join(format!("{i}.crt"));
            let made = std::process::Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args([
                    "-nodes",
                    "-days",
                    "1",
                    "-utf8",
                    "-multivalue-rdn",
                    "-subj",
                    subject,
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("openssl runs");
            assert!(made.status.success(), "{subject}: {made:?}");
            let hashed = std::process::Command::new("openssl")
                .args(["x509", "-noout", "-subject_hash", "-in"])
                .arg(&cert)
                .output()
                .expect("openssl runs");
            let expected = String::from_utf8_lossy(&hashed.stdout).trim().to_string();
            let pem = std::fs::read(&cert).expect("the certificate");
            let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
                .map(|d: CertificateDer<'static>| d)
                .expect("PEM");
            let (_, parsed) = X509Certificate::from_der(der.as_ref()).expect("parses");
            assert_eq!(
                format!("{:08x}", name_hash(parsed.subject())),
                expected,
                "{subject}"
            );
        }
    }
}

//! Client private key files, read as OpenSSL reads them for libpq (`SSL_use_PrivateKey_file`
//! with libpq's passphrase callback, which hands OpenSSL `sslpassword`).
//!
//! The first private key block of the PEM file is used:
//!
//! - `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1) and `EC PRIVATE KEY` (SEC1) as they are;
//!   `sslpassword` is then not needed and not used;
//! - `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2 or scrypt, AES-CBC or 3DES-CBC),
//!   decrypted with `sslpassword`; the older PKCS#5 v1.5 and PKCS#12 schemes are refused with a
//!   message that says so (OpenSSL 3 reads some of them);
//! - `RSA PRIVATE KEY` / `EC PRIVATE KEY` with OpenSSL's legacy encryption headers
//!   (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: AES-256-CBC,IV`, also AES-128/192 and
//!   DES-EDE3-CBC), whose key is OpenSSL's `EVP_BytesToKey` with MD5 over the passphrase and the
//!   first 8 bytes of the IV.
//!
//! As in libpq, an encrypted key without `sslpassword` cannot be read (libpq would leave
//! OpenSSL to prompt on the terminal; this library never prompts), a wrong passphrase is
//! OpenSSL's `bad decrypt`, and a passphrase longer than OpenSSL's 1023-byte buffer is cut
//! there. Every failure is reported by the caller as libpq's `could not load private key file`.

use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

use crate::secret::Secret;

/// The most of a passphrase OpenSSL passes on (`PEM_BUFSIZE` less the terminating NUL).
const MAX_PASSPHRASE: usize = 1023;

/// One PEM block: its label, its RFC 1421 headers and its decoded body.
struct Block {
    label: String,
    headers: Vec<(String, String)>,
    der: Vec<u8>,
}

/// The private key in `pem`, decrypted with `password` when it is encrypted.
pub(super) fn private_key(
    pem: &[u8],
    password: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    let block = blocks(&text)?
        .into_iter()
        .find(|b| {
            matches!(
                b.label.as_str(),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY"
            )
        })
        .ok_or_else(|| "no private key found (no PEM start line)".to_string())?;
    let passphrase = || -> Result<Vec<u8>, String> {
        let password = password
            .map(Secret::expose)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                "the key is encrypted and no passphrase was given (sslpassword)".to_string()
            })?;
        let bytes = password.as_bytes();
        Ok(bytes[..bytes.len().min(MAX_PASSPHRASE)].to_vec())
    };
    match block.label.as_str() {
        "PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block.der))),
        "ENCRYPTED PRIVATE KEY" => {
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(block.der.as_slice())
                .map_err(|e| format!("the encrypted key does not parse: {e}"))?;
            let plain = info.decrypt(passphrase()?).map_err(|e| match e {
                // pkcs5 0.7 reports a padding failure while decrypting as EncryptFailed.
                pkcs8::Error::EncryptedPrivateKey(
                    pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
                )
                | pkcs8::Error::Asn1(_)
                | pkcs8::Error::KeyMalformed => "bad decrypt".to_string(),
                other => format!(
                    "unsupported key encryption ({other}): use PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
                ),
            })?;
            Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                plain.as_bytes().to_vec(),
            )))
        }
        label => {
            let encrypted = block
                .headers
                .iter()
                .any(|(k, v)| k == "Proc-Type" && v.split(',').nth(1) == Some("ENCRYPTED"));
            if !encrypted {
                return Ok(legacy_key(label, block.der));
            }
            let info = block
                .headers
                .iter()
                .find(|(k, _)| k == "DEK-Info")
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| "an encrypted key without a DEK-Info header".to_string())?;
            let der = legacy_decrypt(info, &block.der, &passphrase()?)?;
            let key = legacy_key(label, der);
            // A wrong passphrase leaves valid padding about once in 256 tries: the plaintext is
            // then no key, which OpenSSL too finds only when decoding it.
            if rustls::crypto::ring::sign::any_supported_type(&key).is_err() {
                return Err("bad decrypt".to_string());
            }
            Ok(key)
        }
    }
}

/// A traditional (`BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY`) key's DER.
fn legacy_key(label: &str, der: Vec<u8>) -> PrivateKeyDer<'static> {
    if label == "RSA PRIVATE KEY" {
        PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))
    } else {
        PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))
    }
}

/// The PEM blocks of `text`, with RFC 1421 headers (`Name: value` lines before a blank line).
fn blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let (mut headers, mut body) = (Vec::new(), String::new());
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            match line.split_once(": ") {
                Some((name, value)) if body.is_empty() && !name.contains(' ') => {
                    headers.push((name.to_string(), value.trim().to_string()));
                }
                _ => body.push_str(line.trim()),
            }
        }
        if !closed {
            return Err(format!("no PEM end line for {label}"));
        }
        let der = <base64ct::Base64 as base64ct::Encoding>::decode_vec(&body)
            .map_err(|_| format!("the {label} block is not valid base64"))?;
        out.push(Block {
            label: label.to_string(),
            headers,
            der,
        });
    }
    Ok(out)
}

/// OpenSSL's legacy PEM decryption: `DEK-Info: CIPHER,HEX-IV`, the key from `EVP_BytesToKey`
/// (MD5, one round, the IV's first 8 bytes as salt), CBC with PKCS#7 padding.
fn legacy_decrypt(dek_info: &str, data: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    let (cipher, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| format!("a DEK-Info header without an IV: {dek_info}"))?;
    let iv = hex(iv_hex.trim()).ok_or_else(|| "the DEK-Info IV is not hexadecimal".to_string())?;
    let (key_len, iv_len) = match cipher {
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        "DES-EDE3-CBC" => (24, 8),
        other => {
            return Err(format!(
                "unsupported key encryption ({other}): use AES-CBC or DES-EDE3-CBC"
            ));
        }
    };
    if iv.len() != iv_len {
        return Err(format!("the DEK-Info IV is not {iv_len} bytes"));
    }
    let key = bytes_to_key(password, &iv[..8], key_len);
    let bad = |_| "bad decrypt".to_string();
    match cipher {
        "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|_| "bad key length".to_string())?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(bad),
        "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|_| "bad key length".to_string())?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(bad),
        "AES-256-CBC" => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|_| "bad key length".to_string())?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(bad),
        _ => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|_| "bad key length".to_string())?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(bad),
    }
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one round: `D_i = MD5(D_{i-1} || password || salt)`,
/// concatenated until `len` bytes.
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    use md5_legacy::{Digest, Md5};
    let mut out = Vec::with_capacity(len + 16);
    let mut previous: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut hasher = Md5::new();
        hasher.update(&previous);
        hasher.update(password);
        hasher.update(salt);
        previous = hasher.finalize().to_vec();
        out.extend_from_slice(&previous);
    }
    out.truncate(len);
    out
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encrypts a fresh EC key with `openssl` in `args`' form and reads it back.
    fn openssl_key(args: &[&str], passphrase: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("a directory");
        let plain = dir.path().join("plain.key");
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .arg("-out")
            .arg(&plain)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{out:?}");
        let enc = dir.path().join("enc.key");
        let out = std::process::Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&plain)
            .arg("-out")
            .arg(&enc)
            .arg("-passout")
            .arg(format!("pass:{passphrase}"))
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
        std::fs::read(&enc).expect("the key")
    }

    #[test]
    fn encrypted_keys_read_with_the_right_passphrase_only() {
        let forms: [&[&str]; 4] = [
            &["pkcs8", "-topk8", "-v2", "aes-256-cbc"],
            &["pkcs8", "-topk8", "-v2", "des3"],
            &["pkcs8", "-topk8", "-scrypt"],
            &["ec", "-aes128"],
        ];
        for form in forms {
            let pem = openssl_key(form, "s3cret");
            let right = Secret::new("s3cret".to_string());
            let wrong = Secret::new("nope".to_string());
            assert!(private_key(&pem, Some(&right)).is_ok(), "{form:?}");
            assert_eq!(
                private_key(&pem, Some(&wrong)).err().as_deref(),
                Some("bad decrypt"),
                "{form:?}"
            );
            let none = private_key(&pem, None).expect_err("needs a passphrase");
            assert!(none.contains("sslpassword"), "{form:?}: {none}");
        }
    }

    /// `EVP_BytesToKey` against `openssl enc -P -md md5` (which prints the key it derives).
    #[test]
    fn the_legacy_key_derivation_is_openssls() {
        for (cipher, len) in [
            ("-aes-128-cbc", 16),
            ("-aes-256-cbc", 32),
            ("-des-ede3-cbc", 24),
        ] {
            let out = std::process::Command::new("openssl")
                .args(["enc", cipher, "-P", "-md", "md5", "-pass", "pass:pw"])
                .args(["-S", "73616c7473616c74"])
                .output()
                .expect("openssl runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let printed = text
                .lines()
                .find_map(|l| l.strip_prefix("key="))
                .expect("a key line")
                .trim()
                .to_ascii_lowercase();
            let ours: String = bytes_to_key(b"pw", b"saltsalt", len)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(ours, printed, "{cipher}");
        }
    }

    #[test]
    fn headers_and_bodies_are_split() {
        let pem = "junk\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        let b = blocks(pem).expect("parses");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].headers.len(), 2);
        assert_eq!(b[0].der, vec![0, 1, 2]);
        assert!(blocks("-----BEGIN X-----\nAAAA\n").is_err());
    }
}

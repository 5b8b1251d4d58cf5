//! The live conformance suite (cargo feature `conformance`): throwaway PostgreSQL launchers
//! (native binaries, or containers with cargo feature `docker`), a certificate factory, libpq
//! (`psql`) as the oracle, and the TLS matrix that runs every case through this library and
//! through libpq; with `docker`, also libpq 17 as the oracle for what libpq 15 cannot speak.
//!
//! The code lives in the top-level `conformance/` folder (DESIGN.md's layout) and is compiled
//! into the library as `tea_pgcloud::conformance`.

use std::fmt;

use crate::error::ErrorClass;

pub mod certs;
pub mod child;
pub mod client;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "docker")]
pub mod docker_shim;
pub mod emulators;
pub mod failover;
pub mod hostile;
pub mod launcher;
#[cfg(feature = "docker")]
pub mod libpq17;
pub mod matrix;
pub mod native;
pub mod oracle;
#[cfg(all(feature = "aws", feature = "gcp", feature = "azure"))]
pub mod presets;
pub mod protocol;
pub mod report;
pub mod rotation;
pub mod server;
pub mod verdict;

/// What a connection attempt came to, in the classes shared by this library and the oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Connected without TLS.
    Plain,
    /// Connected over TLS.
    Tls,
    /// Failed, for this reason.
    Error(ErrorClass),
}

impl Outcome {
    /// `plain`, `tls`, or the error class (`untrusted-cert`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Tls => "tls",
            Self::Error(class) => class.as_str(),
        }
    }

    /// Parses what [`Outcome::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "plain" => Some(Self::Plain),
            "tls" => Some(Self::Tls),
            other => ErrorClass::ALL
                .iter()
                .find(|c| c.as_str() == other)
                .map(|c| Self::Error(*c)),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

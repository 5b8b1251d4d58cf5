//! How the official Azure SDK is pointed at the emulators of [`super::azure`] (Key Vault) and
//! [`super::azure_token`] (Entra ID and the managed-identity endpoints): an [`EmulatorTransport`]
//! that sends the SDK's requests to the emulator while the SDK keeps its real URLs, and the two
//! constructors the tests use, [`AzureBackend::for_emulator`] and
//! [`EntraTokenProvider::for_emulator`].
//!
//! Both constructors go through the library's own transport hooks ([`AzureBackend::new`],
//! [`EntraTokenProvider::with_http_client`]), so the emulators exercise the code production
//! runs; only the transport and, for Key Vault, the emulator tenant's client secret differ.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use azure_core::credentials::Secret as AzureSecret;
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Transport, Url};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};

use super::azure::{CLIENT_ID, CLIENT_SECRET, TENANT_ID};
use crate::config::CredentialsConfig;
use crate::env::Environment;
use crate::iam::azure::{EntraTokenProvider, PROVIDER};
use crate::iam::{TokenError, TokenErrorKind};
use crate::plan::ConnectPlan;
use crate::secrets::azure::{
    AzureBackend, AzureTimeouts, BACKEND, http_client, safe_sdk_text, vault_url,
};
use crate::secrets::{SecretError, SecretErrorKind};

/// Sends every request to an emulator (`http://127.0.0.1:PORT`), keeping the path and the
/// query: the SDK keeps its real `https://NAME.vault.azure.net` and
/// `https://login.microsoftonline.com` URLs (it refuses bearer tokens over http and an http
/// authority host) while the bytes go to the emulator. The original host travels in
/// `x-forwarded-host`.
#[derive(Debug, Clone)]
pub struct EmulatorTransport {
    target: Url,
    client: reqwest::Client,
}

impl EmulatorTransport {
    /// A transport to `emulator_uri`, with the attempt timeouts of `timeouts`.
    pub fn new(emulator_uri: &str, timeouts: &AzureTimeouts) -> Result<Self, SecretError> {
        let target = Url::parse(emulator_uri).map_err(|_| {
            SecretError::new(
                BACKEND,
                SecretErrorKind::Malformed,
                format!("emulator address {emulator_uri:?} is not a URL"),
            )
        })?;
        Ok(Self {
            target,
            client: http_client(timeouts)?,
        })
    }
}

impl HttpClient for EmulatorTransport {
    // The trait is declared with `#[async_trait]`; this is the signature it expands to.
    fn execute_request<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: &'life1 Request,
    ) -> Pin<Box<dyn Future<Output = azure_core::Result<AsyncRawResponse>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let mut redirected = request.clone();
            let original = request.url();
            let mut url = self.target.clone();
            url.set_path(original.path());
            url.set_query(original.query());
            if let Some(host) = original.host_str() {
                redirected.insert_header("x-forwarded-host", host.to_string());
            }
            *redirected.url_mut() = url;
            HttpClient::execute_request(&self.client, &redirected).await
        })
    }
}

impl AzureBackend {
    /// A backend for the Key Vault emulator at `emulator_uri` (`http://127.0.0.1:PORT`):
    /// `credentials` gives the real-looking `vault_url` and the prefix; every request, the
    /// vault's and the token endpoint's, goes through an [`EmulatorTransport`] to the emulator,
    /// and the credential is a real `ClientSecretCredential` for the emulator's tenant, so the
    /// SDK runs its 401-challenge flow and token request unchanged.
    pub fn for_emulator(
        credentials: &CredentialsConfig,
        emulator_uri: &str,
        timeouts: AzureTimeouts,
    ) -> Result<Self, SecretError> {
        let vault_url = vault_url(credentials)?;
        let transport = Transport::new(Arc::new(EmulatorTransport::new(emulator_uri, &timeouts)?));
        let credential = ClientSecretCredential::new(
            TENANT_ID,
            CLIENT_ID.to_string(),
            AzureSecret::new(CLIENT_SECRET),
            Some(ClientSecretCredentialOptions {
                client_options: timeouts.client_options(&transport),
            }),
        )
        .map_err(|e| {
            SecretError::new(
                BACKEND,
                SecretErrorKind::AccessDenied,
                format!(
                    "cannot set up ClientSecretCredential: {}",
                    safe_sdk_text(&e).unwrap_or_else(|| "invalid settings".into())
                ),
            )
        })?;
        Self::new(
            vault_url,
            credentials.secret_prefix.as_deref().unwrap_or(""),
            credential,
            "ClientSecretCredential",
            transport,
            timeouts,
        )
    }
}

impl EntraTokenProvider {
    /// A provider for `plan` whose every request goes to the token emulator at
    /// `emulator_uri` (`http://127.0.0.1:PORT`) through an [`EmulatorTransport`]: the SDK keeps
    /// its real `https://login.microsoftonline.com` and `http://169.254.169.254` URLs.
    pub fn for_emulator(
        plan: &ConnectPlan,
        env: Arc<dyn Environment>,
        emulator_uri: &str,
        timeouts: AzureTimeouts,
    ) -> Result<Self, TokenError> {
        let transport = EmulatorTransport::new(emulator_uri, &timeouts)
            .map_err(|e| TokenError::new(PROVIDER, TokenErrorKind::Config, e.to_string()))?;
        Self::with_http_client(plan, env, Arc::new(transport), timeouts)
    }
}

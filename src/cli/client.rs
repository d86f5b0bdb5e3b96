//! A small JSON-RPC client for a running hub, used by the command-line subcommands
//! (`status`, `project`, `agent run`, `token`, `dashboard`) the way `ollama run` talks to
//! its server.
//!
//! It finds the hub through the runtime file `server.json` in the data directory and
//! authenticates with the owner token from the secret store. The runtime file only says
//! where a hub *was*: after a crash it stays behind, and any local program (another
//! user's included) may have bound that port since. So before the token leaves the
//! process, the client asks the program on that port for the signature challenge
//! (docs/security.md, version 2) with `client=owner`, and checks the proof, keyed by the
//! SHA-256 of the owner token, over the `host:port` the client itself contacted. Only a
//! holder of the owner token's hash can compute it, and a relay to the real hub on
//! another port passes on a proof for the wrong endpoint. The WebSocket upgrade that
//! carries the token then goes over the same TCP connection that answered the proof, so
//! no other listener can slip in between the check and the use.
//!
//! A public hub with TLS (`serve --public --tls-cert … --tls-key …`) records an
//! `https://` URL and the name it serves (`tls_host`, the first of `public.hosts`) in
//! its runtime file. The client then speaks TLS to it under that name: the certificate
//! must be valid for it and signed by a root the system trusts, or by a certificate the
//! user names with `--tls-ca FILE`; the Host header is that name, and the proof is
//! checked for `name:port` (443 when the name has no port), as the hub computes it.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, StatusCode, Uri, header};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::either::Either;

use crate::auth::security::{new_token, token_hash, verify_challenge_proof};
use crate::config::SecretStoreKind;
use crate::config::allowlist::HostEntry;
use crate::http::server::{OWNER_CLIENT_ID, RUNTIME_FILE};
use crate::protocol::SUBPROTOCOL;

/// How long the program on the recorded port has to connect and answer the challenge.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`answers_as_hub`] waits for a program on a port to answer: a hub answers at
/// once, and `doctor` should not hang on a program that accepts and stays silent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest signature answer read; a real one is well under 1 KiB.
const SIGNATURE_MAX_BYTES: usize = 64 * 1024;

/// Why the program on the recorded port was not taken for the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// The signature request got this HTTP status instead of 200.
    Status(u16),
    /// The answer is not a Semantest signature (`service` is not `semantest`).
    NotAHub,
    /// A signature with `challenge: null` or no proof at all.
    NoProof,
    /// A proof that does not verify for the owner token, the nonce sent and the endpoint
    /// contacted: an impostor, or a relay to a hub listening elsewhere.
    WrongProof,
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "it answered HTTP {status} to the signature request"),
            Self::NotAHub => f.write_str("it does not answer as a Semantest hub"),
            Self::NoProof => f.write_str("it sent no signature proof"),
            Self::WrongProof => f.write_str("its signature proof is wrong"),
        }
    }
}

/// A client failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No runtime file: the hub is not running for this data directory.
    #[error("no hub is running for {0} (start one with `semantest-hub serve`)")]
    NotRunning(String),
    /// The runtime file names something other than `http://<IP address>:<port>`, or
    /// `https://<IP address>:<port>` with the name the hub serves.
    #[error(
        "the runtime file names {0}, not http(s)://<IP address>:<port>; the command-line client talks to the hub on this machine only"
    )]
    BadUrl(String),
    /// The TLS client could not be set up: no usable root, or an unreadable `--tls-ca`.
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    /// The TLS handshake failed: most often a certificate that is not valid for the
    /// hub's name or not signed by a trusted root.
    #[error(
        "TLS with the hub at {endpoint} as {name} failed (if its certificate is self-signed or from a private CA, pass it with --tls-ca FILE)"
    )]
    Tls {
        /// `host:port` contacted.
        endpoint: String,
        /// The name the certificate was checked for.
        name: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Nothing accepted a connection on the recorded endpoint.
    #[error(
        "cannot reach the hub at {endpoint} (if it stopped, start it with `semantest-hub serve`)"
    )]
    Unreachable {
        /// `host:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The signature request failed at the HTTP level.
    #[error("the signature request to {endpoint} failed")]
    Signature {
        /// `host:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// The program on the recorded endpoint did not prove it holds the owner token's
    /// hash, so the token was not sent.
    #[error(
        "the program at {endpoint} did not prove it is this hub: {reason}; the owner token was not sent (if the hub stopped or crashed, another program may hold its port: stop that program or start the hub with `semantest-hub serve`)"
    )]
    Unverified {
        /// `host:port` the client contacted.
        endpoint: String,
        /// What was wrong.
        reason: Distrust,
    },
    /// The verified hub sent a link to somewhere other than itself.
    #[error("the hub sent a link outside {origin}: {link}; not opening it")]
    ForeignLink {
        /// The verified hub's origin, `http://host:port`.
        origin: String,
        /// The link.
        link: String,
    },
    /// The WebSocket could not be opened or broke.
    #[error("cannot talk to the hub at {url}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// A client id that cannot be one (`owner` or `cl_` and hex digits).
    #[error("{0:?} is not a client id (`owner`, or the `cl_…` id `token create` printed)")]
    BadClientId(String),
    /// The hub answered with a JSON-RPC error.
    #[error("{message} ({kind})")]
    Rpc {
        /// `error.data.kind`.
        kind: String,
        /// `error.message`.
        message: String,
        /// `error.data` (with `kind`), `null` when the error had none.
        data: Value,
    },
    /// The hub closed the connection or sent something unreadable.
    #[error("the hub closed the connection: {0}")]
    Closed(String),
    /// No answer in time.
    #[error("the hub did not answer within {0:?}")]
    Timeout(Duration),
}

/// What a running hub's runtime file says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningHub {
    /// Where it listens, `http://<IP literal>:<port>`.
    pub url: String,
    /// The secret store it keeps the owner token in (`keychain` or `file`, never `auto`:
    /// the store it resolved at start). `None` from a hub that did not record it.
    pub secret_store: Option<SecretStoreKind>,
    /// For a public hub with TLS (an `https://` URL): the name clients reach it by, the
    /// first of `public.hosts` (`name` or `name:port`).
    pub tls_host: Option<String>,
}

/// The running hub of `data_dir`, from its runtime file.
///
/// # Errors
/// [`ClientError::NotRunning`] when the file is missing or unreadable.
pub fn running_hub(data_dir: &Path) -> Result<RunningHub, ClientError> {
    let not_running = || ClientError::NotRunning(data_dir.display().to_string());
    let text = std::fs::read_to_string(data_dir.join(RUNTIME_FILE)).map_err(|_| not_running())?;
    let value: Value = serde_json::from_str(&text).map_err(|_| not_running())?;
    let url = value["url"].as_str().ok_or_else(not_running)?.to_string();
    let secret_store = serde_json::from_value(value["secret_store"].clone()).ok();
    let tls_host = value["tls_host"].as_str().map(str::to_string);
    Ok(RunningHub {
        url,
        secret_store,
        tls_host,
    })
}

/// Where a running hub listens, from its runtime file.
///
/// # Errors
/// [`ClientError::NotRunning`] when the file is missing or unreadable.
pub fn running_hub_url(data_dir: &Path) -> Result<String, ClientError> {
    running_hub(data_dir).map(|hub| hub.url)
}

/// The endpoint an `http://<IP literal>:<port>` URL names, as the hub writes it into its
/// runtime file. Names are refused: the proof binds the literal `host:port` contacted,
/// and no name lookup may redirect the connection.
///
/// # Errors
/// [`ClientError::BadUrl`] for another scheme, a host name, a missing port, a path or
/// userinfo.
pub fn endpoint_of(http_url: &str) -> Result<SocketAddr, ClientError> {
    socket_of(http_url, "http")
}

/// The endpoint of a `scheme://<IP literal>:<port>` URL, as for [`endpoint_of`].
fn socket_of(http_url: &str, scheme: &str) -> Result<SocketAddr, ClientError> {
    let bad = || ClientError::BadUrl(http_url.to_string());
    let uri: Uri = http_url.parse().map_err(|_| bad())?;
    let authority = uri.authority().ok_or_else(bad)?;
    if uri.scheme_str() != Some(scheme)
        || authority.as_str().contains('@')
        || !matches!(uri.path(), "" | "/")
        || uri.query().is_some()
    {
        return Err(bad());
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().map_err(|_| bad())?;
    let port = authority.port_u16().ok_or_else(bad)?;
    Ok(SocketAddr::new(ip, port))
}

/// A connection to a hub: plain TCP to a local hub, TLS to a public one.
type Conn = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// Where a running hub listens and how to reach it: plain HTTP on a loopback address,
/// or TLS under the public name it serves.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    tls: Option<TlsTarget>,
}

#[derive(Clone)]
struct TlsTarget {
    /// The Host the client contacts, as listed in `public.hosts`.
    host: HostEntry,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl Target {
    /// The target the runtime file describes. `https://` needs the `tls_host` the hub
    /// recorded; the certificate must then chain to a system root or to a certificate in
    /// `trust` (a PEM file, e.g. a self-signed certificate or a private CA).
    ///
    /// # Errors
    /// [`ClientError::BadUrl`] for another URL, [`ClientError::TlsSetup`] when no root
    /// can be loaded or `trust` cannot be read.
    pub fn of(hub: &RunningHub, trust: Option<&Path>) -> Result<Self, ClientError> {
        if hub.url.starts_with("https:") {
            let addr = socket_of(&hub.url, "https")?;
            let host = hub
                .tls_host
                .as_deref()
                .and_then(HostEntry::parse)
                .ok_or_else(|| ClientError::BadUrl(hub.url.clone()))?;
            let server_name = ServerName::try_from(
                host.name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|_| ClientError::BadUrl(hub.url.clone()))?;
            let connector = TlsConnector::from(tls_config(trust)?);
            return Ok(Self {
                addr,
                tls: Some(TlsTarget {
                    host,
                    server_name,
                    connector,
                }),
            });
        }
        Ok(Self {
            addr: endpoint_of(&hub.url)?,
            tls: None,
        })
    }

    /// The Host header: the public name for TLS, else the address contacted.
    fn host(&self) -> String {
        match &self.tls {
            Some(tls) => match tls.host.port {
                Some(port) => format!("{}:{port}", tls.host.name),
                None => tls.host.name.clone(),
            },
            None => self.addr.to_string(),
        }
    }

    /// The endpoint the hub binds its proof to: the address contacted, or for TLS the
    /// public name with its port (443 when it names none), as `public_endpoint` does.
    fn proof_endpoint(&self) -> String {
        match &self.tls {
            Some(tls) => tls.host.with_port(443),
            None => self.addr.to_string(),
        }
    }

    /// Connects, with the TLS handshake when the hub speaks TLS.
    async fn open(&self) -> Result<Conn, ClientError> {
        let shown = self.addr.to_string();
        let stream =
            TcpStream::connect(self.addr)
                .await
                .map_err(|source| ClientError::Unreachable {
                    endpoint: shown.clone(),
                    source,
                })?;
        let Some(tls) = &self.tls else {
            return Ok(Either::Left(stream));
        };
        let stream = tls
            .connector
            .connect(tls.server_name.clone(), stream)
            .await
            .map_err(|source| ClientError::Tls {
                endpoint: shown,
                name: tls.host.name.clone(),
                source,
            })?;
        Ok(Either::Right(stream))
    }
}

/// A TLS client configuration trusting the system's roots and the certificates in
/// `trust`.
fn tls_config(trust: Option<&Path>) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    // Certificates the store cannot use are skipped, as the loader itself advises.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = trust {
        let unreadable = |err: rustls::pki_types::pem::Error| {
            ClientError::TlsSetup(format!("{}: {err}", path.display()))
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(unreadable)? {
            roots
                .add(cert.map_err(unreadable)?)
                .map_err(|err| ClientError::TlsSetup(format!("{}: {err}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::TlsSetup(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
    }
    if roots.is_empty() {
        return Err(ClientError::TlsSetup(
            "the system has no trusted roots; pass the hub's certificate with --tls-ca FILE".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ClientError::TlsSetup(err.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether the program listening on `endpoint` answers `GET /semantest-signature` as a
/// Semantest hub (`service: semantest`), without a challenge and so without proving
/// which hub it is: enough to tell another hub from another program holding a port.
/// `false` for anything else, including no answer within [`PROBE_TIMEOUT`].
pub(super) async fn answers_as_hub(endpoint: SocketAddr) -> bool {
    let target = Target {
        addr: endpoint,
        tls: None,
    };
    signature_of(&target).await.is_some()
}

/// The signature (`GET /semantest-signature`, no challenge) of the hub listening on
/// `target`: what it says it is (`version`, `mode`, …), unproven, so for display only.
/// `None` when the program there does not answer as a Semantest hub within
/// [`PROBE_TIMEOUT`].
pub(super) async fn signature_of(target: &Target) -> Option<Value> {
    let probe = async {
        let stream = target.open().await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        let connection = tokio::spawn(connection);
        let request = Request::get("/semantest-signature")
            .header(header::HOST, target.host())
            .body(Empty::<Bytes>::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let ok = response.status() == StatusCode::OK;
        let body = Limited::new(response.into_body(), SIGNATURE_MAX_BYTES)
            .collect()
            .await
            .ok()?
            .to_bytes();
        connection.abort();
        let signature: Value = serde_json::from_slice(&body).ok()?;
        (ok && signature["service"] == "semantest").then_some(signature)
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .ok()
        .flatten()
}

/// Whether `link` is an `http://` URL whose authority is exactly `endpoint` (no userinfo,
/// no other host or port).
fn link_on_endpoint(endpoint: SocketAddr, link: &str) -> bool {
    link.parse::<Uri>().is_ok_and(|uri| {
        uri.scheme_str() == Some("http")
            && uri
                .authority()
                .is_some_and(|authority| authority.as_str() == endpoint.to_string())
    })
}

/// Connects to `target`, asks for the owner's signature challenge and checks the
/// proof; returns the connection that answered, ready for the WebSocket upgrade.
async fn verified_stream(
    target: &Target,
    client_id: &str,
    token_hash: &[u8; 32],
) -> Result<Conn, ClientError> {
    let shown = target.addr.to_string();
    let stream = target.open().await?;
    let http_err = |source| ClientError::Signature {
        endpoint: shown.clone(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_err)?;
    // Keeps the socket open after the exchange so the upgrade can reuse it.
    let connection = tokio::spawn(connection.without_shutdown());
    let nonce = new_token();
    let request = Request::get(format!(
        "/semantest-signature?challenge={nonce}&client={client_id}"
    ))
    .header(header::HOST, target.host())
    .body(Empty::<Bytes>::new())
    .expect("a valid request");
    let response = sender.send_request(request).await.map_err(http_err)?;
    let unverified = |reason| ClientError::Unverified {
        endpoint: shown.clone(),
        reason,
    };
    if response.status() != StatusCode::OK {
        return Err(unverified(Distrust::Status(response.status().as_u16())));
    }
    let body = Limited::new(response.into_body(), SIGNATURE_MAX_BYTES)
        .collect()
        .await
        .map_err(|_| unverified(Distrust::NotAHub))?
        .to_bytes();
    let signature: Value =
        serde_json::from_slice(&body).map_err(|_| unverified(Distrust::NotAHub))?;
    if signature["service"] != "semantest" {
        return Err(unverified(Distrust::NotAHub));
    }
    let Some(proof) = signature["challenge"]["proof"].as_str() else {
        return Err(unverified(Distrust::NoProof));
    };
    // The endpoint this client contacted, never the one the answer names.
    let endpoint = target.proof_endpoint();
    if !verify_challenge_proof(token_hash, &nonce, client_id, &endpoint, proof) {
        return Err(unverified(Distrust::WrongProof));
    }
    drop(sender);
    let parts = connection
        .await
        .map_err(|err| ClientError::Closed(err.to_string()))?
        .map_err(http_err)?;
    if !parts.read_buf.is_empty() {
        return Err(ClientError::Closed(
            "unexpected bytes after the signature answer".into(),
        ));
    }
    Ok(parts.io.into_inner())
}

/// An open connection to a hub that proved it holds the owner token's hash.
pub struct HubClient {
    socket: WebSocketStream<Conn>,
    endpoint: SocketAddr,
    next_id: u64,
    pending: VecDeque<Value>,
    timeout: Duration,
}

impl HubClient {
    /// Connects to `http_url` (`http://127.0.0.1:P`, from the runtime file): first
    /// checks the owner's signature proof for exactly that endpoint (see the module
    /// docs), then opens the WebSocket on the same connection with `token` as a bearer
    /// token. The token is never sent to a program that did not prove itself.
    ///
    /// # Errors
    /// As [`HubClient::connect_to`].
    pub async fn connect(http_url: &str, token: &str) -> Result<Self, ClientError> {
        let target = Target {
            addr: endpoint_of(http_url)?,
            tls: None,
        };
        Self::connect_to(&target, token).await
    }

    /// Connects to `target` (a local hub, or a public one over TLS): checks the owner's
    /// signature proof, then opens the WebSocket on the same connection with `token` as
    /// a bearer token.
    ///
    /// # Errors
    /// [`ClientError::BadUrl`], [`ClientError::Unreachable`], [`ClientError::Tls`],
    /// [`ClientError::Unverified`] (the token was not sent), [`ClientError::Timeout`]
    /// when the check takes over [`VERIFY_TIMEOUT`], or [`ClientError::Connect`], e.g.
    /// 401 for a wrong token.
    pub async fn connect_to(target: &Target, token: &str) -> Result<Self, ClientError> {
        Self::connect_to_as(target, OWNER_CLIENT_ID, token).await
    }

    /// As [`HubClient::connect`], for the token of `client_id`: `owner` for the owner
    /// token, `cl_…` for a client token, whose proof the hub computes from that token's
    /// hash (docs/security.md, the signature challenge). The connection then has that
    /// token's scopes.
    ///
    /// # Errors
    /// As [`HubClient::connect_to_as`].
    pub async fn connect_as(
        http_url: &str,
        client_id: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        let target = Target {
            addr: endpoint_of(http_url)?,
            tls: None,
        };
        Self::connect_to_as(&target, client_id, token).await
    }

    /// As [`HubClient::connect_to`], for the token of `client_id` (see
    /// [`HubClient::connect_as`]).
    ///
    /// # Errors
    /// As [`HubClient::connect_to`]; a client id that contains anything but letters,
    /// digits and `_` is [`ClientError::BadClientId`] before anything is sent.
    pub async fn connect_to_as(
        target: &Target,
        client_id: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        if client_id.is_empty()
            || !client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ClientError::BadClientId(client_id.to_string()));
        }
        let endpoint = target.addr;
        let stream = tokio::time::timeout(
            VERIFY_TIMEOUT,
            verified_stream(target, client_id, &token_hash(token)),
        )
        .await
        .map_err(|_| ClientError::Timeout(VERIFY_TIMEOUT))??;
        let scheme = if target.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{}/ws", target.host());
        let connect_err = |source| ClientError::Connect {
            url: url.clone(),
            source: Box::new(source),
        };
        let mut request = url.as_str().into_client_request().map_err(connect_err)?;
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .expect("hex token is a header value"),
        );
        headers.insert(
            "sec-websocket-protocol",
            SUBPROTOCOL.parse().expect("static header value"),
        );
        let (socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(connect_err)?;
        Ok(Self {
            socket,
            endpoint,
            next_id: 0,
            pending: VecDeque::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// The verified hub's origin, `http://host:port`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.endpoint)
    }

    /// Checks that `link` (e.g. the dashboard sign-in link the hub sent) is on the
    /// verified hub's own origin, so the client opens nothing anywhere else.
    ///
    /// # Errors
    /// [`ClientError::ForeignLink`] for another scheme, host or port, or userinfo.
    pub fn check_link(&self, link: &str) -> Result<(), ClientError> {
        let foreign = || ClientError::ForeignLink {
            origin: self.origin(),
            link: link.to_string(),
        };
        if link_on_endpoint(self.endpoint, link) {
            Ok(())
        } else {
            Err(foreign())
        }
    }

    /// Sends a request and waits for its response; notifications that arrive meanwhile
    /// are kept for [`HubClient::next_notification`].
    ///
    /// # Errors
    /// [`ClientError::Rpc`] for an error response, or a transport error.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let frame = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|err| ClientError::Closed(err.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| ClientError::Timeout(self.timeout))??;
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = message.get("error") {
                    return Err(ClientError::Rpc {
                        kind: error["data"]["kind"]
                            .as_str()
                            .unwrap_or("UNKNOWN")
                            .to_string(),
                        message: error["message"].as_str().unwrap_or("error").to_string(),
                        data: error["data"].clone(),
                    });
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
            if message.get("method").is_some() {
                self.pending.push_back(message);
            }
        }
    }

    /// The next notification (`{method, params}`), waiting for one if none is queued.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the connection ends.
    pub async fn next_notification(&mut self) -> Result<Value, ClientError> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(message);
        }
        loop {
            let message = self.read().await?;
            if message.get("method").is_some() {
                return Ok(message);
            }
        }
    }

    async fn read(&mut self) -> Result<Value, ClientError> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map_err(|err| ClientError::Closed(format!("unreadable frame: {err}")));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(
                        frame
                            .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                            .unwrap_or_default(),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(ClientError::Closed(err.to_string())),
                None => return Err(ClientError::Closed("end of stream".into())),
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_url_must_be_an_ip_literal_with_a_port() {
        assert_eq!(
            endpoint_of("http://127.0.0.1:3003").unwrap().to_string(),
            "127.0.0.1:3003"
        );
        assert_eq!(
            endpoint_of("http://[::1]:3004/").unwrap().to_string(),
            "[::1]:3004"
        );
        for bad in [
            "https://127.0.0.1:3003",
            "http://localhost:3003",
            "http://127.0.0.1",
            "http://user@127.0.0.1:3003",
            "http://127.0.0.1:3003/ws",
            "http://127.0.0.1:3003/?x=1",
            "127.0.0.1:3003",
        ] {
            assert!(
                matches!(endpoint_of(bad), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn links_must_stay_on_the_verified_endpoint() {
        let endpoint: SocketAddr = "127.0.0.1:3003".parse().unwrap();
        assert!(link_on_endpoint(
            endpoint,
            "http://127.0.0.1:3003/login?code=abc"
        ));
        for bad in [
            "http://127.0.0.1:3004/login?code=abc",
            "https://127.0.0.1:3003/login",
            "http://localhost:3003/login",
            "http://evil@127.0.0.1:3003/login",
            "http://127.0.0.1:3003.evil.example/login",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "/login",
        ] {
            assert!(!link_on_endpoint(endpoint, bad), "{bad}");
        }
    }
}

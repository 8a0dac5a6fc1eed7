//! Builds the TLS client and server contexts of every profile, once per run, with the
//! real libraries (OpenSSL 3 through the `openssl` crate, rustls with ring), and runs the
//! handshakes over tokio streams.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use openssl::dh::Dh;
use openssl::ssl::{
    AlpnError, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslVerifyMode, SslVersion, StatusType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::certs::CertStore;
use crate::config::{Catalogue, Library, TlsClientProfile, TlsServerProfile, TlsVersion};

/// A byte stream after the handshake (TLS or plain TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// A built client profile.
pub enum ClientTls {
    /// OpenSSL context plus the per-connection choices.
    Openssl {
        /// Shared context.
        ctx: SslContext,
        /// Send server_name.
        sni: bool,
        /// Send status_request.
        status_request: bool,
    },
    /// rustls configuration (SNI and tickets are in it).
    Rustls(Arc<rustls::ClientConfig>),
}

/// A built server profile.
pub enum ServerTls {
    /// OpenSSL context.
    Openssl(SslContext),
    /// rustls configuration.
    Rustls(Arc<rustls::ServerConfig>),
}

/// Every built profile, by name.
pub struct TlsContexts {
    /// Client profiles.
    pub clients: HashMap<String, ClientTls>,
    /// Server profiles.
    pub servers: HashMap<String, ServerTls>,
    _legacy: Option<openssl::provider::Provider>,
}

fn ossl_version(v: TlsVersion) -> SslVersion {
    match v {
        TlsVersion::Tls10 => SslVersion::TLS1,
        TlsVersion::Tls11 => SslVersion::TLS1_1,
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// ALPN protocol list in wire format (length-prefixed).
fn alpn_wire(protos: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in protos {
        out.push(p.len() as u8);
        out.extend_from_slice(p.as_bytes());
    }
    out
}

#[derive(Clone, Copy)]
struct OsslCommon<'a> {
    min: TlsVersion,
    max: TlsVersion,
    ciphers: Option<&'a str>,
    tls13: Option<&'a str>,
    groups: Option<&'a str>,
    tickets: bool,
}

fn ossl_common(b: &mut SslContextBuilder, c: OsslCommon<'_>) -> Result<()> {
    // TLS 1.0/1.1, RC4, 3DES and small keys are refused above security level 0 in OpenSSL 3.
    b.set_security_level(0);
    b.set_min_proto_version(Some(ossl_version(c.min)))?;
    b.set_max_proto_version(Some(ossl_version(c.max)))?;
    if let Some(list) = c.ciphers {
        b.set_cipher_list(list).with_context(|| format!("cipher list {list}"))?;
    }
    if let Some(list) = c.tls13 {
        b.set_ciphersuites(list).with_context(|| format!("TLS 1.3 suites {list}"))?;
    }
    if let Some(groups) = c.groups {
        b.set_groups_list(groups).with_context(|| format!("groups {groups}"))?;
    }
    if !c.tickets {
        b.set_options(SslOptions::NO_TICKET);
    }
    Ok(())
}

fn ossl_client(p: &TlsClientProfile) -> Result<ClientTls> {
    let mut b = SslContextBuilder::new(SslMethod::tls_client())?;
    ossl_common(
        &mut b,
        OsslCommon {
            min: p.min_version,
            max: p.max_version,
            ciphers: p.ciphers.as_deref(),
            tls13: p.tls13_ciphers.as_deref(),
            groups: p.groups.as_deref(),
            tickets: p.session_ticket,
        },
    )?;
    if let Some(s) = &p.sigalgs {
        b.set_sigalgs_list(s).with_context(|| format!("sigalgs {s}"))?;
    }
    if !p.alpn.is_empty() {
        b.set_alpn_protos(&alpn_wire(&p.alpn))?;
    }
    b.set_verify(SslVerifyMode::NONE);
    Ok(ClientTls::Openssl { ctx: b.build(), sni: p.sni, status_request: p.status_request })
}

fn ossl_server(p: &TlsServerProfile, certs: &CertStore) -> Result<ServerTls> {
    let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
    ossl_common(
        &mut b,
        OsslCommon {
            min: p.min_version,
            max: p.max_version,
            ciphers: p.ciphers.as_deref(),
            tls13: p.tls13_ciphers.as_deref(),
            groups: p.groups.as_deref(),
            tickets: p.session_ticket,
        },
    )?;
    if p.server_preference {
        b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    }
    let chain = certs.chain(p.cert);
    b.set_certificate(&chain.certs[0])?;
    b.set_private_key(&chain.key)?;
    for c in &chain.certs[1..] {
        b.add_extra_chain_cert(c.clone())?;
    }
    let dh = Dh::get_2048_256()?;
    b.set_tmp_dh(&dh)?;
    if !p.alpn.is_empty() {
        // Built once per profile and kept for the process's life (the callback's answer must
        // outlive the handshake).
        let ours: &'static [u8] = Box::leak(alpn_wire(&p.alpn).into_boxed_slice());
        b.set_alpn_select_callback(move |_, client| {
            openssl::ssl::select_next_proto(ours, client).ok_or(AlpnError::NOACK)
        });
    }
    Ok(ServerTls::Openssl(b.build()))
}

/// rustls provider restricted to the profile's suites (in its order) and groups.
fn rustls_provider(ciphers: Option<&str>, groups: Option<&str>) -> Result<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(list) = ciphers {
        let mut suites = Vec::new();
        for name in list.split(':') {
            let Some(s) = provider.cipher_suites.iter().find(|s| format!("{:?}", s.suite()) == name) else {
                bail!("rustls has no cipher suite {name}");
            };
            suites.push(*s);
        }
        provider.cipher_suites = suites;
    }
    if let Some(list) = groups {
        let mut kx = Vec::new();
        for name in list.split(':') {
            let want = match name {
                "X25519" => "X25519",
                "P-256" => "secp256r1",
                "P-384" => "secp384r1",
                other => bail!("rustls has no group {other}"),
            };
            let Some(g) = provider.kx_groups.iter().find(|g| format!("{:?}", g.name()) == want) else {
                bail!("rustls has no group {name}");
            };
            kx.push(*g);
        }
        provider.kx_groups = kx;
    }
    Ok(provider)
}

fn rustls_versions(min: TlsVersion, max: TlsVersion) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let mut v = Vec::new();
    if min <= TlsVersion::Tls13 && max >= TlsVersion::Tls13 {
        v.push(&rustls::version::TLS13);
    }
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        v.push(&rustls::version::TLS12);
    }
    if v.is_empty() {
        bail!("rustls supports only TLS 1.2 and 1.3");
    }
    Ok(v)
}

/// Accepts any certificate (as scanners and most malware do); signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

fn rustls_client(p: &TlsClientProfile) -> Result<ClientTls> {
    let provider = rustls_provider(p.ciphers.as_deref(), p.groups.as_deref())?;
    let verifier = AcceptAnyCert(provider.signature_verification_algorithms);
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&rustls_versions(p.min_version, p.max_version)?)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.enable_sni = p.sni;
    cfg.alpn_protocols = p.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    if !p.session_ticket {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Ok(ClientTls::Rustls(Arc::new(cfg)))
}

fn rustls_server(p: &TlsServerProfile, certs: &CertStore) -> Result<ServerTls> {
    let provider = rustls_provider(p.ciphers.as_deref(), p.groups.as_deref())?;
    let chain = certs.chain(p.cert);
    let der: Vec<CertificateDer<'static>> =
        chain.certs.iter().map(|c| c.to_der().map(CertificateDer::from)).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key.private_key_to_pkcs8()?));
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&rustls_versions(p.min_version, p.max_version)?)?
        .with_no_client_auth()
        .with_single_cert(der, key)?;
    cfg.alpn_protocols = p.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    cfg.ignore_client_order = p.server_preference;
    if p.session_ticket {
        cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    } else {
        cfg.send_tls13_tickets = 0;
    }
    Ok(ServerTls::Rustls(Arc::new(cfg)))
}

impl TlsContexts {
    /// Builds every profile of the catalogue; a profile a library cannot express is an error
    /// naming it.
    pub fn build(cat: &Catalogue, certs: &CertStore) -> Result<Self> {
        // RC4 and other legacy ciphers live in OpenSSL 3's legacy provider; keep the default
        // provider available beside it.
        let legacy = openssl::provider::Provider::try_load(None, "legacy", true).ok();
        let mut clients = HashMap::new();
        for p in &cat.tls_client {
            let built = match p.library {
                Library::Openssl => ossl_client(p),
                Library::Rustls => rustls_client(p),
            }
            .with_context(|| format!("TLS client profile {}", p.name))?;
            clients.insert(p.name.clone(), built);
        }
        let mut servers = HashMap::new();
        for p in &cat.tls_server {
            let built = match p.library {
                Library::Openssl => ossl_server(p, certs),
                Library::Rustls => rustls_server(p, certs),
            }
            .with_context(|| format!("TLS server profile {}", p.name))?;
            servers.insert(p.name.clone(), built);
        }
        Ok(Self { clients, servers, _legacy: legacy })
    }
}

/// Runs the client handshake of `profile` on `tcp`.
pub async fn connect(profile: &ClientTls, host: &str, tcp: TcpStream) -> Result<Box<dyn Io>> {
    match profile {
        ClientTls::Openssl { ctx, sni, status_request } => {
            let mut ssl = Ssl::new(ctx)?;
            if *sni {
                ssl.set_hostname(host)?;
            }
            if *status_request {
                ssl.set_status_type(StatusType::OCSP)?;
            }
            let mut s = tokio_openssl::SslStream::new(ssl, tcp)?;
            std::pin::Pin::new(&mut s).connect().await.context("OpenSSL handshake")?;
            Ok(Box::new(s))
        }
        ClientTls::Rustls(cfg) => {
            let name = ServerName::try_from(host.to_owned()).context("server name")?;
            let s =
                tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp).await.context("rustls handshake")?;
            Ok(Box::new(s))
        }
    }
}

/// Runs the server handshake of `profile` on `tcp`.
pub async fn accept(profile: &ServerTls, tcp: TcpStream) -> Result<Box<dyn Io>> {
    match profile {
        ServerTls::Openssl(ctx) => {
            let ssl = Ssl::new(ctx)?;
            let mut s = tokio_openssl::SslStream::new(ssl, tcp)?;
            std::pin::Pin::new(&mut s).accept().await.context("OpenSSL handshake")?;
            Ok(Box::new(s))
        }
        ServerTls::Rustls(cfg) => {
            let s = tokio_rustls::TlsAcceptor::from(cfg.clone()).accept(tcp).await.context("rustls handshake")?;
            Ok(Box::new(s))
        }
    }
}

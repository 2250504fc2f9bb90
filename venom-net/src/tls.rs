//! TLS 1.3 configuration (rustls with the ring provider; no other version
//! or provider is ever enabled).
//!
//! * **Pinned:** [`Identity::self_signed`] makes a self-signed
//!   certificate; the mirror pins exactly that certificate with
//!   [`ClientTls::pinned`] (compared byte for byte, no CA involved).
//!   **Without client authentication ([`ServerTls::new`]) the publisher
//!   cannot tell mirrors apart: anyone who can reach its port completes the
//!   handshake and gets what the policy grants anonymous peers (by default
//!   the whole region), and counts only against the global connection caps.**
//!   To authenticate mirrors in pinned mode too, the publisher pins their
//!   certificates with [`ServerTls::pinned_clients`] and each mirror presents
//!   its own with [`ClientTls::pinned_with_identity`].
//! * **Production:** a [`CertificateAuthority`] issues leaf identities;
//!   [`ServerTls::mutual`] requires a client certificate issued by the CA
//!   (rustls `WebPkiClientVerifier`) and [`ClientTls::mutual`] verifies the
//!   publisher against the CA and presents the mirror's certificate.
//!
//! There is no plaintext mode.
//!
//! ```
//! use venom_net::tls::{ClientTls, Identity, ServerTls};
//! let id = Identity::self_signed(&["localhost"])?;
//! let server = ServerTls::new(&id)?;
//! let client = ClientTls::pinned(id.cert().clone())?;
//! # let _ = (server, client);
//! # Ok::<(), venom_net::Error>(())
//! ```

use crate::proto::frame::{HEADER_LEN, MAX_CONTROL_BODY, MAX_UPDATE_BODY};
use crate::{Error, Result};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// ALPN protocol id of venom-net v1.
pub const ALPN: &[u8] = b"venom-net/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cfg_err(e: impl std::fmt::Display) -> Error {
    Error::TlsConfig(e.to_string())
}

/// A certificate chain (leaf first) and its private key.
/// Invariant: `chain` is not empty.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    /// A fresh self-signed certificate valid for `names` (DNS names or IPs).
    pub fn self_signed(names: &[&str]) -> Result<Identity> {
        let ck = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        Ok(Identity {
            chain: vec![ck.cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
        })
    }

    /// From DER parts (e.g. loaded from files): the chain, leaf first, and a
    /// PKCS#8 private key. Fails on an empty chain.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, pkcs8_key: Vec<u8>) -> Result<Identity> {
        if chain.is_empty() {
            return Err(Error::TlsConfig("empty certificate chain".into()));
        }
        Ok(Identity { chain, key: PrivatePkcs8KeyDer::from(pkcs8_key) })
    }

    /// The PKCS#8 DER of the private key (to store it; keep it secret).
    pub fn pkcs8_key_der(&self) -> &[u8] {
        self.key.secret_pkcs8_der()
    }

    /// The leaf certificate (what a mirror pins).
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// A certificate authority for mutual TLS (rcgen). Keep its key offline in
/// production; this type is for tests, tools and small deployments.
pub struct CertificateAuthority {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl CertificateAuthority {
    /// A new self-signed CA.
    pub fn new(common_name: &str) -> Result<Self> {
        let mut p = rcgen::CertificateParams::default();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let issuer = rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate()?)?;
        Ok(CertificateAuthority { issuer })
    }

    /// The CA certificate (the trust root both sides load).
    pub fn cert(&self) -> &CertificateDer<'static> {
        self.issuer.der()
    }

    /// Issues a leaf identity for `names` (server and client auth).
    pub fn issue(&self, names: &[&str]) -> Result<Identity> {
        let mut p = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        p.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(Identity { chain: vec![cert.der().clone(), self.cert().clone()], key: key.serialize_der().into() })
    }
}

/// TLS 1.3 only: where every config, server or client, starts (no other
/// version is ever enabled).
fn tls13_only<S: rustls::ConfigSide>(
    b: rustls::ConfigBuilder<S, rustls::WantsVersions>,
) -> Result<rustls::ConfigBuilder<S, rustls::WantsVerifier>> {
    Ok(b.with_protocol_versions(&[&rustls::version::TLS13])?)
}

fn roots(certs: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>> {
    let mut r = RootCertStore::empty();
    for c in certs {
        r.add(c.clone())?;
    }
    Ok(Arc::new(r))
}

/// Largest control frame on the wire (what a mirror ever sends).
const CONTROL_FRAME: u32 = (HEADER_LEN + MAX_CONTROL_BODY) as u32;
/// Largest update frame on the wire.
const UPDATE_FRAME: u32 = (HEADER_LEN + MAX_UPDATE_BODY) as u32;

/// Receive window of the publisher (per stream and per connection): two
/// control frames. A mirror only ever sends hello/ack/resync frames.
pub const PUBLISHER_RECEIVE_WINDOW: u32 = 2 * CONTROL_FRAME;
/// Send window of the publisher per connection (bytes buffered and
/// unacknowledged at the QUIC level): four update frames (~4 MiB), enough
/// for LAN bandwidth-delay products, and the bound on what a mirror that
/// stops reading can make the publisher buffer.
pub const PUBLISHER_SEND_WINDOW: u32 = 4 * UPDATE_FRAME;
/// Receive window of a mirror (per stream and per connection): four update frames.
pub const MIRROR_RECEIVE_WINDOW: u32 = 4 * UPDATE_FRAME;

/// The QUIC transport limits of one side, bounded by what the protocol
/// uses: one bidirectional stream that the mirror opens (the publisher
/// accepts one, the mirror none), no unidirectional streams, no datagrams,
/// flow-control windows sized from the frame caps; keep-alives so a dead
/// peer is noticed within the idle timeout (which also bounds a handshake).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The publisher side (accepts the one stream).
    publisher: bool,
    /// Receive window, per stream and per connection.
    receive: u32,
    /// Send window per connection.
    send: u32,
}

impl Limits {
    /// A publisher's defaults.
    pub(crate) const PUBLISHER: Limits =
        Limits { publisher: true, receive: PUBLISHER_RECEIVE_WINDOW, send: PUBLISHER_SEND_WINDOW };
    /// A mirror's defaults (it only ever sends control frames).
    pub(crate) const MIRROR: Limits =
        Limits { publisher: false, receive: MIRROR_RECEIVE_WINDOW, send: 2 * CONTROL_FRAME };

    /// The quinn transport config of these limits.
    pub(crate) fn config(self) -> Arc<quinn::TransportConfig> {
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(u32::from(self.publisher)));
        t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
        t.datagram_receive_buffer_size(None);
        t.stream_receive_window(quinn::VarInt::from_u32(self.receive));
        t.receive_window(quinn::VarInt::from_u32(self.receive));
        t.send_window(u64::from(self.send));
        t.keep_alive_interval(Some(Duration::from_millis(500)));
        t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(5_000))));
        Arc::new(t)
    }
}

/// Publisher-side TLS (a quinn server config).
#[derive(Clone)]
pub struct ServerTls(pub(crate) quinn::ServerConfig);

impl ServerTls {
    /// Server certificate only (development: mirrors pin it).
    pub fn new(id: &Identity) -> Result<Self> {
        Self::finish(tls13_only(rustls::ServerConfig::builder_with_provider(provider()))?.with_no_client_auth(), id)
    }

    /// Pinned client authentication: mirrors must present one of exactly
    /// these certificates (byte-equal, e.g. self-signed by each mirror) and
    /// prove they hold its key. The mirror side is [`ClientTls::pinned_with_identity`].
    pub fn pinned_clients(id: &Identity, clients: &[CertificateDer<'static>]) -> Result<Self> {
        if clients.is_empty() {
            return Err(Error::TlsConfig("no client certificates to pin".into()));
        }
        let p = provider();
        let v = Arc::new(PinnedCert { certs: clients.to_vec(), provider: p.clone() });
        Self::finish(tls13_only(rustls::ServerConfig::builder_with_provider(p))?.with_client_cert_verifier(v), id)
    }

    /// Mutual TLS: mirrors must present a certificate issued by one of `ca_roots`.
    pub fn mutual(id: &Identity, ca_roots: &[CertificateDer<'static>]) -> Result<Self> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots(ca_roots)?, provider()).build().map_err(cfg_err)?;
        Self::finish(
            tls13_only(rustls::ServerConfig::builder_with_provider(provider()))?.with_client_cert_verifier(verifier),
            id,
        )
    }

    /// Raises (or lowers) the per-connection send window from
    /// [`PUBLISHER_SEND_WINDOW`], e.g. for a long fat link whose
    /// bandwidth-delay product exceeds it. It is also the bound on what a
    /// mirror that stops reading makes the publisher buffer, so size it
    /// with `max_mirrors` in mind.
    pub fn with_send_window(mut self, bytes: u32) -> Self {
        self.0.transport_config(Limits { send: bytes.max(CONTROL_FRAME), ..Limits::PUBLISHER }.config());
        self
    }

    /// The quinn server config (for tools and benchmarks using quinn directly).
    pub fn quinn_config(&self) -> quinn::ServerConfig {
        self.0.clone()
    }

    /// Presents `id`, speaks our ALPN, uses the publisher transport limits.
    fn finish(
        b: rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>,
        id: &Identity,
    ) -> Result<Self> {
        let mut cfg = b.with_single_cert(id.chain.clone(), id.key())?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        let mut s = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(cfg).map_err(cfg_err)?));
        s.transport_config(Limits::PUBLISHER.config());
        Ok(ServerTls(s))
    }
}

/// Mirror-side TLS (a quinn client config).
#[derive(Clone)]
pub struct ClientTls(pub(crate) quinn::ClientConfig);

impl ClientTls {
    /// Trust exactly this publisher certificate (development setup).
    pub fn pinned(publisher_cert: CertificateDer<'static>) -> Result<Self> {
        Self::finish(Self::pinning(publisher_cert)?.with_no_client_auth())
    }

    /// Pins the publisher's certificate and presents `id` (for a publisher
    /// using [`ServerTls::pinned_clients`]).
    pub fn pinned_with_identity(publisher_cert: CertificateDer<'static>, id: &Identity) -> Result<Self> {
        Self::finish(Self::pinning(publisher_cert)?.with_client_auth_cert(id.chain.clone(), id.key())?)
    }

    /// Mutual TLS: verify the publisher against `ca_roots`, present `id`.
    pub fn mutual(ca_roots: &[CertificateDer<'static>], id: &Identity) -> Result<Self> {
        Self::finish(Self::trusting(ca_roots)?.with_client_auth_cert(id.chain.clone(), id.key())?)
    }

    /// Verify the publisher against `ca_roots`, no client certificate.
    pub fn with_roots(ca_roots: &[CertificateDer<'static>]) -> Result<Self> {
        Self::finish(Self::trusting(ca_roots)?.with_no_client_auth())
    }

    /// Sets the mirror's receive window (stream and connection) instead of
    /// [`MIRROR_RECEIVE_WINDOW`], e.g. for a link whose bandwidth-delay
    /// product exceeds it; at least one update frame.
    pub fn with_receive_window(mut self, bytes: u32) -> Self {
        self.0.transport_config(Limits { receive: bytes.max(UPDATE_FRAME), ..Limits::MIRROR }.config());
        self
    }

    /// The quinn client config (for tools and benchmarks using quinn directly).
    pub fn quinn_config(&self) -> quinn::ClientConfig {
        self.0.clone()
    }

    /// Accepts exactly `publisher_cert` (see [`PinnedCert`]).
    fn pinning(
        publisher_cert: CertificateDer<'static>,
    ) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>> {
        let p = provider();
        let v = Arc::new(PinnedCert { certs: vec![publisher_cert], provider: p.clone() });
        Ok(tls13_only(rustls::ClientConfig::builder_with_provider(p))?.dangerous().with_custom_certificate_verifier(v))
    }

    /// Verifies the publisher's chain against `ca_roots`.
    fn trusting(
        ca_roots: &[CertificateDer<'static>],
    ) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>> {
        Ok(tls13_only(rustls::ClientConfig::builder_with_provider(provider()))?
            .with_root_certificates(roots(ca_roots)?))
    }

    /// Speaks our ALPN, uses the mirror transport limits.
    fn finish(mut cfg: rustls::ClientConfig) -> Result<Self> {
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        let mut c = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(cfg).map_err(cfg_err)?));
        c.transport_config(Limits::MIRROR.config());
        Ok(ClientTls(c))
    }
}

/// Accepts exactly the pinned end-entity certificates (byte-equal), then
/// checks the handshake signature with it as usual. Used both ways: a
/// mirror pinning its publisher, a publisher pinning its mirrors.
#[derive(Debug)]
struct PinnedCert {
    certs: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedCert {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }
}

/// The handshake-signature checks of both verifier traits (their methods
/// have the same names and signatures): TLS 1.2 is refused, TLS 1.3 uses
/// the pinned provider's algorithms.
macro_rules! pinned_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            // TLS 1.2 is never enabled.
            Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    };
}

impl ClientCertVerifier for PinnedCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ClientCertVerified::assertion())
    }

    pinned_signature_checks!();
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity).map(|()| ServerCertVerified::assertion())
    }

    pinned_signature_checks!();
}

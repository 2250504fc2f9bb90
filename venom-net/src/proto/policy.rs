//! Publisher-side authorization: which peer may subscribe to which bytes.
//!
//! A [`Policy`] is a pure decision function, evaluated on the hello of
//! every session ([`Policy::authorize`]) and, earlier, right after the TLS
//! handshake ([`Policy::admits`]: an identity the policy does not list at
//! all is closed before it may send a hello, so it never holds a session
//! slot).
//!
//! **Identities.** Under mutual TLS (or pinned client certificates, see
//! [`ServerTls::pinned_clients`](crate::tls::ServerTls::pinned_clients)) a
//! peer is its leaf certificate: [`PeerId::Certificate`] carries the first
//! DNS subject-alternative name and the blake3 hash of the certificate's
//! SubjectPublicKeyInfo. A rule names a peer either way (`dns:NAME` or
//! `spki:HEX`). Without client authentication
//! ([`ServerTls::new`](crate::tls::ServerTls::new)) every peer is
//! [`PeerId::Anonymous`]: the publisher cannot tell peers apart, so **anyone
//! who can reach the port gets what the anonymous rule grants.**
//!
//! **Defaults.** [`Policy::default`] denies every certificate identity that
//! is not listed (so a mutual-TLS publisher serves nobody until rules are
//! added) and grants anonymous peers the whole region (pinned development
//! mode keeps working; use [`Policy::deny_all`] to close that too).
//! [`Policy::allow_all`] grants everything to everyone, for development.
//!
//! **Grants** are byte ranges of the published region, the whole region,
//! or named arrays of its [catalog](crate::proto::catalog). A named-array grant
//! also grants the catalog prefix (a named mirror reads it first) and needs
//! the catalog: [`Policy::with_catalog`]. Every run of a subscription must
//! lie inside the union of the peer's grants, else the hello is refused with
//! [`Error::Unauthorized`] (the mirror sees
//! [`Refusal::Unauthorized`](crate::proto::admission::Refusal::Unauthorized)).
//!
//! ```
//! use venom_net::proto::policy::{Grant, PeerId, Policy};
//! use venom_net::Subscription;
//! let policy = Policy::parse("
//!     ## mirror-1 reads everything, mirror-2 only the first page
//!     allow dns:mirror-1 whole
//!     allow dns:mirror-2 range 0 4096
//! ")?;
//! let two = PeerId::named("mirror-2");
//! let page = Subscription::range(0, 4096, 0).compile(1 << 20)?;
//! let all = Subscription::whole().compile(1 << 20)?;
//! assert!(policy.authorize(&two, &page).is_ok());
//! assert!(policy.authorize(&two, &all).is_err());
//! assert!(!policy.admits(&PeerId::named("stranger")));
//! # Ok::<(), venom_net::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::proto::catalog::{CATALOG_BYTES, Catalog};
use crate::proto::subscription::CompiledSubscription;
use rustls::pki_types::CertificateDer;

/// Cap on rules in a policy (and lines parsed).
pub const MAX_RULES: usize = 1024;
/// Cap on grants per rule.
pub const MAX_GRANTS: usize = 64;
/// Cap on a peer name (DNS names are at most 253 bytes).
pub const MAX_NAME: usize = 253;

/// Who is on the other end of a session, as far as TLS proved it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerId {
    /// No client certificate (server-only TLS): indistinguishable peers.
    Anonymous,
    /// A verified client certificate.
    Certificate {
        /// First DNS subject-alternative name, if any.
        name: Option<String>,
        /// blake3 of the DER SubjectPublicKeyInfo.
        spki: [u8; 32],
    },
}

impl PeerId {
    /// A certificate identity known by name only (tests and examples; the
    /// SPKI hash is zero).
    pub fn named(name: &str) -> Self {
        PeerId::Certificate { name: Some(name.to_owned()), spki: [0; 32] }
    }

    /// The identity of a (verified) leaf certificate. Fails on a
    /// certificate webpki cannot parse.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<Self> {
        let ee =
            webpki::EndEntityCert::try_from(cert).map_err(|e| Error::TlsConfig(format!("peer certificate: {e}")))?;
        let name = ee.valid_dns_names().next().map(str::to_owned);
        let spki = *blake3::hash(ee.subject_public_key_info().as_ref()).as_bytes();
        Ok(PeerId::Certificate { name, spki })
    }

    /// [`from_certificate`](Self::from_certificate) for raw DER bytes (e.g. a file).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        PeerId::from_certificate(&CertificateDer::from(der))
    }

    /// The identity of a quinn connection (its peer certificate chain, leaf first).
    pub fn of_connection(conn: &quinn::Connection) -> Result<Self> {
        let Some(any) = conn.peer_identity() else { return Ok(PeerId::Anonymous) };
        match any.downcast::<Vec<CertificateDer<'static>>>() {
            Ok(chain) => match chain.first() {
                Some(leaf) => PeerId::from_certificate(leaf),
                None => Ok(PeerId::Anonymous),
            },
            Err(_) => Ok(PeerId::Anonymous),
        }
    }

    /// The key per-identity limits count by: `dns:NAME`, else `spki:HEX`;
    /// `None` for anonymous peers (only the global caps apply to them).
    pub fn limit_key(&self) -> Option<String> {
        match self {
            PeerId::Anonymous => None,
            PeerId::Certificate { name: Some(n), .. } => Some(format!("dns:{n}")),
            PeerId::Certificate { spki, .. } => Some(format!("spki:{}", hex(spki))),
        }
    }
}

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit_key() {
            Some(k) => f.write_str(&k),
            None => f.write_str("anonymous"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whom a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Certificates whose first DNS SAN is this name.
    Name(String),
    /// The certificate with this SPKI hash (see [`PeerId::Certificate`]).
    Spki([u8; 32]),
    /// Peers without a client certificate.
    Anonymous,
    /// Everyone (what [`Policy::allow_all`] uses).
    Everyone,
}

impl Subject {
    fn matches(&self, peer: &PeerId) -> bool {
        match (self, peer) {
            (Subject::Everyone, _) => true,
            (Subject::Anonymous, PeerId::Anonymous) => true,
            (Subject::Name(n), PeerId::Certificate { name: Some(m), .. }) => n == m,
            (Subject::Spki(h), PeerId::Certificate { spki, .. }) => h == spki && *h != [0; 32],
            _ => false,
        }
    }
}

/// What a rule grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The whole region.
    Whole,
    /// Bytes `offset .. offset + len` of the region.
    Range {
        /// First byte.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// A named array of the catalog (and the catalog prefix).
    Array(String),
}

/// One `allow` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Whom it applies to.
    pub subject: Subject,
    /// What it grants (region id 0, the only region a publisher serves).
    pub grants: Vec<Grant>,
}

/// An authorization policy (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    catalog: Option<Catalog>,
}

impl Default for Policy {
    /// Deny unlisted certificate identities; anonymous peers get the whole region.
    fn default() -> Self {
        Policy { rules: vec![Rule { subject: Subject::Anonymous, grants: vec![Grant::Whole] }], catalog: None }
    }
}

impl Policy {
    /// No rules: nobody may subscribe to anything.
    pub fn deny_all() -> Self {
        Policy { rules: Vec::new(), catalog: None }
    }

    /// **Development only:** everyone (anonymous or any certificate the TLS
    /// layer accepted) may subscribe to the whole region.
    pub fn allow_all() -> Self {
        Policy { rules: vec![Rule { subject: Subject::Everyone, grants: vec![Grant::Whole] }], catalog: None }
    }

    /// Adds a rule granting `grant` to `subject`.
    pub fn allow(mut self, subject: Subject, grant: Grant) -> Self {
        match self.rules.iter_mut().find(|r| r.subject == subject) {
            Some(r) => r.grants.push(grant),
            None => self.rules.push(Rule { subject, grants: vec![grant] }),
        }
        self
    }

    /// Shorthand: the certificate named `name` may read the whole region.
    pub fn allow_name(self, name: &str) -> Self {
        self.allow(Subject::Name(name.to_owned()), Grant::Whole)
    }

    /// Resolves named-array grants against `catalog` (the published region's).
    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether any rule applies to `peer` (checked right after the
    /// handshake: an unlisted peer is closed before its hello).
    pub fn admits(&self, peer: &PeerId) -> bool {
        self.rules.iter().any(|r| r.subject.matches(peer) && !r.grants.is_empty())
    }

    /// Decides whether `peer` may subscribe to `sub` (compiled against the
    /// published region): every run must lie inside the union of the peer's grants.
    pub fn authorize(&self, peer: &PeerId, sub: &CompiledSubscription) -> Result<()> {
        let deny = |why: String| Err(Error::Unauthorized(format!("{peer}: {why}")));
        let mut ranges: Vec<(u64, u64)> = Vec::new(); // (start, end)
        for r in self.rules.iter().filter(|r| r.subject.matches(peer)) {
            for g in &r.grants {
                match g {
                    Grant::Whole => ranges.push((0, u64::MAX)),
                    Grant::Range { offset, len } => ranges.push((*offset, offset.saturating_add(*len))),
                    Grant::Array(name) => {
                        let Some(cat) = &self.catalog else {
                            return deny(format!("array grant {name:?} but the policy has no catalog"));
                        };
                        // A missing array grants nothing (the catalog may have changed).
                        if let Ok(a) = cat.get(name)
                            && let Some(len) = a.byte_len()
                        {
                            ranges.push((a.offset, a.offset.saturating_add(len)));
                            ranges.push((0, CATALOG_BYTES as u64));
                        }
                    }
                }
            }
        }
        if ranges.is_empty() {
            return deny("no rule grants this peer anything".into());
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (s, e) in ranges {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        for run in sub.runs() {
            let end = run.src.saturating_add(run.len);
            // The merged interval starting at or before run.src, if any.
            let i = merged.partition_point(|&(s, _)| s <= run.src);
            if i == 0 || merged[i - 1].1 < end {
                return deny(format!("bytes {}+{} are not granted", run.src, run.len));
            }
        }
        Ok(())
    }

    /// Parses the text form, one rule per line (`#` starts a comment):
    ///
    /// ```text
    /// allow SUBJECT GRANT
    /// SUBJECT = dns:NAME | spki:64-HEX-DIGITS | anonymous | everyone
    /// GRANT   = whole | range OFFSET LEN | array NAME
    /// ```
    ///
    /// The result starts from [`Policy::deny_all`]. Any malformed line is a
    /// typed error naming the line; at most [`MAX_RULES`] lines.
    pub fn parse(text: &str) -> Result<Policy> {
        let mut p = Policy::deny_all();
        for (n, line) in text.lines().enumerate() {
            if n >= MAX_RULES {
                return Err(Error::PolicySyntax { line: n + 1, why: "too many lines".into() });
            }
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| Error::PolicySyntax { line: n + 1, why: why.to_owned() };
            let words: Vec<&str> = line.split_whitespace().take(6).collect();
            let (subject, grant) = match words.as_slice() {
                ["allow", s, rest @ ..] => (parse_subject(s).map_err(bad)?, parse_grant(rest).map_err(bad)?),
                _ => return Err(bad("expected `allow SUBJECT GRANT`")),
            };
            if p.rules.iter().find(|r| r.subject == subject).is_some_and(|r| r.grants.len() >= MAX_GRANTS) {
                return Err(bad("too many grants for one subject"));
            }
            p = p.allow(subject, grant);
        }
        Ok(p)
    }
}

fn parse_name(s: &str) -> Result<String, &'static str> {
    if s.is_empty() || s.len() > MAX_NAME || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("names are 1..=253 printable ASCII bytes");
    }
    Ok(s.to_owned())
}

fn parse_subject(s: &str) -> Result<Subject, &'static str> {
    Ok(match s {
        "anonymous" => Subject::Anonymous,
        "everyone" => Subject::Everyone,
        _ => match s.split_once(':') {
            Some(("dns", n)) => Subject::Name(parse_name(n)?),
            Some(("spki", h)) => {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("spki: needs 64 hex digits");
                }
                let mut out = [0u8; 32];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(|_| "bad hex")?;
                }
                Subject::Spki(out)
            }
            _ => return Err("subject must be dns:NAME, spki:HEX, anonymous or everyone"),
        },
    })
}

fn parse_grant(w: &[&str]) -> Result<Grant, &'static str> {
    let num = |s: &str| s.parse::<u64>().map_err(|_| "offsets and lengths are decimal u64");
    Ok(match w {
        ["whole"] => Grant::Whole,
        ["range", o, l] => Grant::Range { offset: num(o)?, len: num(l)? },
        ["array", n] => Grant::Array(parse_name(n)?),
        _ => return Err("grant must be `whole`, `range OFFSET LEN` or `array NAME`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::subscription::Subscription;

    fn sub(s: Subscription) -> CompiledSubscription {
        s.compile(1 << 20).unwrap()
    }

    #[test]
    fn default_denies_unlisted_certificates_and_serves_anonymous() {
        let p = Policy::default();
        assert!(p.authorize(&PeerId::named("x"), &sub(Subscription::whole())).is_err());
        assert!(!p.admits(&PeerId::named("x")));
        assert!(p.authorize(&PeerId::Anonymous, &sub(Subscription::whole())).is_ok());
        assert!(Policy::deny_all().authorize(&PeerId::Anonymous, &sub(Subscription::whole())).is_err());
        assert!(Policy::allow_all().authorize(&PeerId::named("x"), &sub(Subscription::whole())).is_ok());
    }

    #[test]
    fn ranges_must_cover_every_run() {
        let p = Policy::parse("allow dns:m range 0 100\nallow dns:m range 100 100 # adjacent").unwrap();
        let m = PeerId::named("m");
        assert!(p.authorize(&m, &sub(Subscription::range(50, 150, 0))).is_ok());
        assert!(p.authorize(&m, &sub(Subscription::range(150, 51, 0))).is_err());
        let two =
            Subscription::range(0, 10, 0).with(crate::proto::subscription::Part::Range { src: 190, len: 10, dst: 10 });
        assert!(p.authorize(&m, &sub(two)).is_ok());
    }

    #[test]
    fn array_grants_resolve_through_the_catalog() {
        let cat = Catalog::builder().array("a", crate::proto::subscription::Dtype::U8, &[64]).array(
            "b",
            crate::proto::subscription::Dtype::U8,
            &[64],
        );
        let cat = cat.build().unwrap();
        let p = Policy::deny_all().allow(Subject::Name("m".into()), Grant::Array("b".into()));
        let m = PeerId::named("m");
        let b = cat.get("b").unwrap().offset;
        let s = sub(Subscription::range(b, 64, 0));
        assert!(p.authorize(&m, &s).is_err(), "no catalog: denied");
        let p = p.with_catalog(cat.clone());
        assert!(p.authorize(&m, &s).is_ok());
        assert!(p.authorize(&m, &sub(Subscription::range(0, CATALOG_BYTES as u64, 0))).is_ok());
        let a = cat.get("a").unwrap().offset;
        assert!(p.authorize(&m, &sub(Subscription::range(a, 64, 0))).is_err());
    }

    #[test]
    fn identities_come_from_certificates() {
        let id = crate::tls::Identity::self_signed(&["mirror-7"]).unwrap();
        let p = PeerId::from_der(id.cert()).unwrap();
        assert_eq!(p.limit_key().as_deref(), Some("dns:mirror-7"));
        assert!(matches!(PeerId::from_der(b"not a certificate"), Err(Error::TlsConfig(_))));
    }

    #[test]
    fn parse_errors_are_typed() {
        for bad in
            ["deny dns:x whole", "allow dns: whole", "allow spki:12 whole", "allow dns:x range 1", "allow x whole"]
        {
            assert!(matches!(Policy::parse(bad), Err(Error::PolicySyntax { line: 1, .. })), "{bad}");
        }
        let h = "ab".repeat(32);
        let p = Policy::parse(&format!("allow spki:{h} whole\nallow anonymous array x")).unwrap();
        assert_eq!(p.rules()[0].subject, Subject::Spki([0xab; 32]));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "(allow|deny|#| |dns:|spki:|range|array|whole|anonymous|[0-9a-f]{1,70}|\n){0,40}") {
            let _ = Policy::parse(&text);
        }

        #[test]
        fn authorize_agrees_with_byte_by_byte_coverage(
            grants in proptest::collection::vec((0u64..1024, 0u64..256), 0..6),
            src in 0u64..1024,
            len in 1u64..256,
        ) {
            proptest::prop_assume!(src + len <= 1024);
            let p = grants.iter().fold(Policy::deny_all(), |p, &(offset, len)| {
                p.allow(Subject::Name("m".into()), Grant::Range { offset, len })
            });
            let covered = (src..src + len).all(|b| grants.iter().any(|&(o, l)| o <= b && b < o + l));
            let s = Subscription::range(src, len, 0).compile(1024).unwrap();
            proptest::prop_assert_eq!(p.authorize(&PeerId::named("m"), &s).is_ok(), covered);
        }
    }
}

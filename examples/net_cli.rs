//! Command-line flags and TLS material shared by the venom-net examples
//! (tickers, life, peer_split, peer_stress, heatmap, weights).
#![allow(dead_code)] // each example uses a subset

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use venom_net::io::Publisher;
use venom_net::mesh::MeshTls;
use venom_net::tls::{CertificateAuthority, ClientTls, Identity, ServerTls};

/// `--key value` flags and `--switch` booleans.
pub struct Flags(HashMap<String, String>);

impl Flags {
    /// Parses `std::env::args`; prints `help` and exits on `-h`/`--help`;
    /// exits with status 2 on an unknown or malformed flag.
    pub fn parse(help: &str, values: &[&str], switches: &[&str]) -> Flags {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if a == "-h" || a == "--help" {
                println!("{help}");
                std::process::exit(0);
            }
            let key = a.trim_start_matches("--").to_owned();
            if switches.contains(&key.as_str()) {
                map.insert(key, "true".into());
            } else if values.contains(&key.as_str()) && a.starts_with("--") {
                let Some(v) = it.next() else { fail(&format!("{a} needs a value"), help) };
                map.insert(key, v);
            } else {
                fail(&format!("unknown argument {a}"), help);
            }
        }
        Flags(map)
    }

    /// The value of `--key`, or `default`.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> T {
        match self.0.get(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| fail(&format!("bad value {v:?} for --{key}"), "")),
        }
    }

    /// The raw value of `--key`.
    pub fn opt(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether `--key` was given.
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

fn fail(msg: &str, help: &str) -> ! {
    eprintln!("error: {msg}\n\n{help}");
    std::process::exit(2)
}

/// Parses `b=127.0.0.1:7002,c=127.0.0.1:7003`.
pub fn parse_peers(s: &str) -> Result<Vec<(String, SocketAddr)>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (id, addr) = p.split_once('=').ok_or(format!("expected ID=ADDR, got {p:?}"))?;
            Ok((id.to_owned(), addr.parse().map_err(|e| format!("{addr}: {e}"))?))
        })
        .collect()
}

type BoxError = Box<dyn std::error::Error>;

/// Issues a fresh mesh CA and one private key directory per peer:
/// `root/<id>/{ca.der,cert.der,key.der}`, each directory 0700 and each key
/// 0600 ([`MeshTls::save`]). The CA's private key is not kept. In a real
/// deployment, copy `root/<id>` to peer `id`'s host only.
pub fn issue_mesh_dirs(root: &Path, ids: &[&str]) -> Result<(), BoxError> {
    let ca = CertificateAuthority::new("venom-mesh-example-ca")?;
    for id in ids {
        MeshTls::issue(&ca, id)?.save(&root.join(id))?;
    }
    Ok(())
}

/// Mesh TLS for `me`, read from its own directory `root/<me>` only. On first
/// use (no `root/<me>` yet) every peer's directory is issued with
/// [`issue_mesh_dirs`] (run one peer first; the others then find theirs).
pub fn mesh_tls_from_dir(root: &Path, me: &str, ids: &[&str]) -> Result<MeshTls, BoxError> {
    if !root.join(me).exists() {
        issue_mesh_dirs(root, ids)?;
    }
    Ok(MeshTls::load(&root.join(me))?)
}

fn rustls_cert(der: Vec<u8>) -> rustls::pki_types::CertificateDer<'static> {
    rustls::pki_types::CertificateDer::from(der)
}

/// Server TLS that also saves the self-signed certificate to `dir/server.der`
/// (for clients started in another terminal).
pub fn server_tls(dir: Option<&str>) -> Result<(ServerTls, ClientTls), BoxError> {
    let id = Identity::self_signed(&["localhost"])?;
    if let Some(d) = dir {
        std::fs::create_dir_all(d)?;
        std::fs::write(Path::new(d).join("server.der"), id.cert().as_ref())?;
    }
    Ok((ServerTls::new(&id)?, ClientTls::pinned(id.cert().clone())?))
}

/// Client TLS pinning the certificate a server saved with [`server_tls`].
pub fn client_tls(dir: &str) -> Result<ClientTls, BoxError> {
    let der = std::fs::read(Path::new(dir).join("server.der"))?;
    Ok(ClientTls::pinned(rustls_cert(der))?)
}

/// What `--role` asks for, with `--listen`/`--connect`/`--certs` resolved.
pub enum Role {
    /// No `--role`: server and client(s) in this process, on loopback.
    Loopback,
    /// `--role server`: publish on `listen`, writing certificates to `certs`.
    Server {
        /// Address to listen on.
        listen: SocketAddr,
        /// Directory for the CA and certificates the clients read.
        certs: String,
    },
    /// `--role client`: connect to `connect` with the certificates in `--certs`.
    Client {
        /// Publisher address.
        connect: SocketAddr,
        /// TLS config pinned to the server's certificate.
        tls: ClientTls,
    },
}

impl Flags {
    /// Resolves `--role`; `port` and `certs` are the example's defaults.
    pub fn role(&self, port: u16, certs: &str) -> Result<Role, BoxError> {
        let certs = self.opt("certs").unwrap_or(certs);
        let default = format!("127.0.0.1:{port}");
        match self.opt("role") {
            None => Ok(Role::Loopback),
            Some("server") => {
                Ok(Role::Server { listen: self.opt("listen").unwrap_or(&default).parse()?, certs: certs.to_owned() })
            }
            Some("client") => {
                Ok(Role::Client { connect: self.opt("connect").unwrap_or(&default).parse()?, tls: client_tls(certs)? })
            }
            Some(r) => Err(format!("unknown role {r}").into()),
        }
    }
}

/// Waits for the server's simulation thread to finish, then closes the
/// publisher (flushing what is in flight).
pub async fn finish(publisher: Publisher, server: std::thread::JoinHandle<()>) {
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    publisher.close().await;
}

//! Where a mesh peer's key material lives: one private directory per peer.
//!
//! ```text
//! <dir>/          0700, readable by the peer's user only
//!   ca.der        the mesh CA certificate (public: the trust root)
//!   cert.der      this peer's certificate (DNS SAN = peer id)
//!   key.der       this peer's PKCS#8 private key, 0600
//! ```
//!
//! A peer reads only its own directory: no peer can read another's key, so
//! no peer can feed (or read as) another's part. The CA's private key is
//! never written here; issue the peer directories where the CA lives and
//! copy each one to its peer's host only.

use super::MeshTls;
use crate::tls::Identity;
use crate::{Error, Result};
use rustls::pki_types::CertificateDer;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    // `mode` applies only on creation: tighten a pre-existing file too.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    Ok(f.sync_all()?)
}

impl MeshTls {
    /// Writes this peer's material into `dir` (created 0700; the key 0600).
    pub fn save(&self, dir: &Path) -> Result<()> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let ca = self.ca_roots.first().ok_or_else(|| Error::TlsConfig("no CA root".into()))?;
        write_file(&dir.join("ca.der"), ca.as_ref(), 0o644)?;
        write_file(&dir.join("cert.der"), self.identity.cert().as_ref(), 0o644)?;
        write_file(&dir.join("key.der"), self.identity.pkcs8_key_der(), 0o600)
    }

    /// Loads a peer's material saved by [`save`](Self::save). Refuses a key
    /// file or directory that other users can access (like ssh does).
    pub fn load(dir: &Path) -> Result<MeshTls> {
        for (p, what) in [(dir.to_path_buf(), "directory"), (dir.join("key.der"), "key file")] {
            let mode = std::fs::metadata(&p)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(Error::TlsConfig(format!(
                    "{what} {} is accessible by other users (mode {:o}); chmod go-rwx it",
                    p.display(),
                    mode & 0o777
                )));
            }
        }
        let ca = CertificateDer::from(std::fs::read(dir.join("ca.der"))?);
        let cert = CertificateDer::from(std::fs::read(dir.join("cert.der"))?);
        let identity = Identity::from_der(vec![cert, ca.clone()], std::fs::read(dir.join("key.der"))?)?;
        Ok(MeshTls { ca_roots: vec![ca], identity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::CertificateAuthority;

    #[test]
    fn saved_material_is_private_and_loads_back() {
        let root = std::env::temp_dir().join(format!("venom-mesh-keys-{}", std::process::id()));
        let dir = root.join("a");
        let ca = CertificateAuthority::new("ca").unwrap();
        let t = MeshTls::issue(&ca, "a").unwrap();
        t.save(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("key.der")), 0o600);
        let back = MeshTls::load(&dir).unwrap();
        assert_eq!(back.identity.cert(), t.identity.cert());
        std::fs::set_permissions(dir.join("key.der"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(MeshTls::load(&dir).is_err(), "a world-readable key is refused");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

//! Test PKI for the control plane the tests start: one CA, serving certificates for
//! 127.0.0.1, client certificates (the x509 authenticator reads the user from CN and the
//! groups from O), and the service-account signing key. See "Certificates" in
//! <https://kubernetes.io/docs/setup/best-practices/certificates/>.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its key, as PEM files (and text, for kubeconfigs).
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

/// The CA that signs everything, with the directory its files live in.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    pub ca: Pair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish()
    }
}

impl Pki {
    /// A new CA in `dir` (`ca.crt`, `ca.key`).
    pub fn new(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key = KeyPair::generate().map_err(|e| format!("CA key: {e}"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "aperture-test-ca");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("CA cert: {e}"))?;
        let ca = write_pair(dir, "ca", cert.pem(), key.serialize_pem())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
            ca,
        })
    }

    /// A serving certificate for 127.0.0.1 and `localhost` (plus `dns` names).
    pub fn server(&self, name: &str, dns: &[&str]) -> Result<Pair, String> {
        let mut sans: Vec<String> = vec!["localhost".into()];
        sans.extend(dns.iter().map(|d| d.to_string()));
        let mut params = CertificateParams::new(sans).map_err(|e| e.to_string())?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(name, params)
    }

    /// A client certificate for user `user` in `groups`.
    pub fn client(&self, file: &str, user: &str, groups: &[&str]) -> Result<Pair, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(file, params)
    }

    /// The service-account signing key (`sa.key`, private, PKCS#8) and its public half
    /// (`sa.pub`).
    pub fn service_account_key(&self) -> Result<(PathBuf, PathBuf), String> {
        let key = KeyPair::generate().map_err(|e| format!("SA key: {e}"))?;
        let private = self.dir.join("sa.key");
        let public = self.dir.join("sa.pub");
        write(&private, &key.serialize_pem())?;
        write(&public, &key.public_key_pem())?;
        Ok((private, public))
    }

    fn sign(&self, file: &str, params: CertificateParams) -> Result<Pair, String> {
        let key = KeyPair::generate().map_err(|e| format!("{file} key: {e}"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("{file} cert: {e}"))?;
        write_pair(&self.dir, file, cert.pem(), key.serialize_pem())
    }
}

fn write_pair(dir: &Path, name: &str, cert_pem: String, key_pem: String) -> Result<Pair, String> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    write(&cert, &cert_pem)?;
    write(&key, &key_pem)?;
    Ok(Pair {
        cert,
        key,
        cert_pem,
        key_pem,
    })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

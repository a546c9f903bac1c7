//! The cluster's PKI: one CA, serving certificates for the API server and the kubelet, the
//! kubelet's client certificate (its node identity), a client certificate the API server
//! presents to the kubelet, and the ServiceAccount key pair; and etcd's own CA, which signs
//! etcd's serving (and peer) certificate and one client certificate, the API server's. The
//! etcd CA's key is never written, so no other etcd client certificate can be issued (the
//! cluster CA cannot issue one either: etcd trusts only its own CA).
//! All keys are ECDSA P-256 (fast to generate; accepted by every component).

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use crate::files::{write_private, write_public};
use crate::layout::{FIRST_SERVICE_IP, NODE_IP, StateLayout};

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub(crate) struct CertPair {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its PKCS#8 private key (PEM).
    pub key_pem: String,
}

/// Everything the components need; written to `<state_dir>/cluster/pki`.
pub(crate) struct Pki {
    /// The cluster CA (also signs CSRs through the controller manager).
    pub ca: CertPair,
    /// API server serving certificate (also used by the controller manager and scheduler
    /// for their loopback health endpoints).
    pub api_server: CertPair,
    /// Kubelet serving certificate.
    pub kubelet: CertPair,
    /// Kubelet client certificate: `system:node:<node>` in `system:nodes`.
    pub kubelet_client: CertPair,
    /// Client certificate the API server presents to the kubelet.
    pub api_server_kubelet_client: CertPair,
    /// etcd's CA (its key is kept in memory only).
    pub etcd_ca: CertPair,
    /// etcd's serving certificate, also its peer certificate (server and client usage).
    pub etcd_server: CertPair,
    /// The only etcd client certificate: the API server's.
    pub api_server_etcd_client: CertPair,
    /// ServiceAccount token signing key (PKCS#8 PEM).
    pub service_account_key_pem: String,
    /// ServiceAccount token verification key (SPKI PEM).
    pub service_account_pub_pem: String,
}

/// Subject alternative names of the API server certificate.
pub(crate) fn api_server_sans() -> Vec<String> {
    [
        "127.0.0.1".to_string(),
        NODE_IP.to_string(),
        FIRST_SERVICE_IP.to_string(),
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ]
    .to_vec()
}

/// Subject alternative names of etcd's certificate (it listens on loopback only).
pub(crate) fn etcd_sans() -> Vec<String> {
    vec!["127.0.0.1".to_string(), "localhost".to_string()]
}

/// Subject alternative names of the kubelet serving certificate.
pub(crate) fn kubelet_sans(node_name: &str) -> Vec<String> {
    vec![NODE_IP.to_string(), node_name.to_string()]
}

fn new_key() -> anyhow::Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating an ECDSA P-256 key")
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Parameters of a leaf certificate; `sans` empty for client certificates.
pub(crate) fn leaf_params(
    common_name: &str,
    organization: Option<&str>,
    sans: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(sans).context("invalid subject alternative name")?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn issue(params: &CertificateParams, ca: &Issuer<'_, KeyPair>) -> anyhow::Result<CertPair> {
    let key = new_key()?;
    let cert = params
        .signed_by(&key, ca)
        .context("signing a certificate")?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A self-signed CA named `common_name`, and its issuer.
fn new_ca(common_name: &str) -> anyhow::Result<(CertPair, Issuer<'static, KeyPair>)> {
    let key = new_key()?;
    let params = ca_params(common_name);
    let cert = params
        .self_signed(&key)
        .with_context(|| format!("self-signing the CA {common_name}"))?;
    let pair = CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    Ok((pair, Issuer::new(params, key)))
}

impl Pki {
    /// Generates a fresh CA, certificates and ServiceAccount keys.
    pub(crate) fn generate(node_name: &str) -> anyhow::Result<Self> {
        let (ca, issuer) = new_ca("gomicro-local-ca")?;
        let (etcd_ca, etcd_issuer) = new_ca("gomicro-local-etcd-ca")?;
        let mut etcd_params = leaf_params(
            "gmc-etcd",
            None,
            etcd_sans(),
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        etcd_params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
        let etcd_server = issue(&etcd_params, &etcd_issuer)?;
        let api_server_etcd_client = issue(
            &leaf_params(
                "kube-apiserver-etcd-client",
                None,
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
            )?,
            &etcd_issuer,
        )?;

        let api_server = issue(
            &leaf_params(
                "kube-apiserver",
                None,
                api_server_sans(),
                ExtendedKeyUsagePurpose::ServerAuth,
            )?,
            &issuer,
        )?;
        let kubelet = issue(
            &leaf_params(
                &format!("system:node:{node_name}"),
                Some("system:nodes"),
                kubelet_sans(node_name),
                ExtendedKeyUsagePurpose::ServerAuth,
            )?,
            &issuer,
        )?;
        let kubelet_client = issue(
            &leaf_params(
                &format!("system:node:{node_name}"),
                Some("system:nodes"),
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
            )?,
            &issuer,
        )?;
        let api_server_kubelet_client = issue(
            &leaf_params(
                "kube-apiserver-kubelet-client",
                Some("system:masters"),
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
            )?,
            &issuer,
        )?;
        let service_account = new_key()?;
        Ok(Self {
            ca,
            api_server,
            kubelet,
            kubelet_client,
            api_server_kubelet_client,
            etcd_ca,
            etcd_server,
            api_server_etcd_client,
            service_account_key_pem: service_account.serialize_pem(),
            service_account_pub_pem: service_account.public_key_pem(),
        })
    }

    /// Writes all files to the layout's PKI dir (private keys mode 0600; the etcd CA's
    /// certificate only).
    pub(crate) fn write(&self, layout: &StateLayout) -> anyhow::Result<()> {
        let pairs = [
            ("ca", &self.ca),
            ("apiserver", &self.api_server),
            ("kubelet", &self.kubelet),
            ("kubelet-client", &self.kubelet_client),
            ("apiserver-kubelet-client", &self.api_server_kubelet_client),
            ("etcd-server", &self.etcd_server),
            ("apiserver-etcd-client", &self.api_server_etcd_client),
        ];
        for (name, pair) in pairs {
            write_public(&layout.pki(&format!("{name}.crt")), &pair.cert_pem)?;
            write_private(&layout.pki(&format!("{name}.key")), &pair.key_pem)?;
        }
        write_public(&layout.pki("etcd-ca.crt"), &self.etcd_ca.cert_pem)?;
        write_private(&layout.pki("sa.key"), &self.service_account_key_pem)?;
        write_public(&layout.pki("sa.pub"), &self.service_account_pub_pem)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::SanType;
    use std::net::IpAddr;

    #[test]
    fn api_server_sans_cover_every_name_pods_and_clients_dial() {
        let params = leaf_params(
            "kube-apiserver",
            None,
            api_server_sans(),
            ExtendedKeyUsagePurpose::ServerAuth,
        )
        .unwrap();
        let ips: Vec<IpAddr> = params
            .subject_alt_names
            .iter()
            .filter_map(|san| match san {
                SanType::IpAddress(ip) => Some(*ip),
                _ => None,
            })
            .collect();
        let dns: Vec<String> = params
            .subject_alt_names
            .iter()
            .filter_map(|san| match san {
                SanType::DnsName(name) => Some(name.as_str().to_string()),
                _ => None,
            })
            .collect();
        for ip in ["127.0.0.1", "10.244.0.1", "10.96.0.1"] {
            assert!(ips.contains(&ip.parse().unwrap()), "missing IP SAN {ip}");
        }
        for name in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(dns.contains(&name.to_string()), "missing DNS SAN {name}");
        }
    }

    #[test]
    fn kubelet_sans_are_the_node_ip_and_name() {
        assert_eq!(kubelet_sans("n1"), vec!["10.244.0.1", "n1"]);
    }

    #[test]
    fn generated_pki_is_pem_and_keys_differ() {
        let pki = Pki::generate("n1").unwrap();
        for pair in [&pki.ca, &pki.api_server, &pki.kubelet] {
            assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        }
        assert_ne!(pki.ca.key_pem, pki.api_server.key_pem);
        assert!(
            pki.service_account_pub_pem
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
    }

    #[test]
    fn pki_files_are_written_with_private_keys_unreadable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let layout = StateLayout::new(dir.path());
        Pki::generate("n1").unwrap().write(&layout).unwrap();
        let mode = |f: &str| {
            std::fs::metadata(layout.pki(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("sa.key"), 0o600);
        assert_eq!(mode("etcd-server.key"), 0o600);
        assert_eq!(mode("apiserver-etcd-client.key"), 0o600);
        assert_eq!(mode("ca.crt"), 0o644);
        assert_eq!(mode("etcd-ca.crt"), 0o644);
        assert!(
            !layout.pki("etcd-ca.key").exists(),
            "no further etcd client certificate can be issued"
        );
        assert!(
            std::fs::read_to_string(layout.pki("sa.pub"))
                .unwrap()
                .contains("PUBLIC KEY")
        );
    }
}

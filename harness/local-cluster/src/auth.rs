//! Static bearer tokens of the control-plane principals, the API server's token file and the
//! kubeconfigs that carry those tokens; the kubelet's kubeconfig carries its client
//! certificate instead.

use std::path::Path;

use anyhow::Context as _;

use crate::files::{random_hex, write_private};
use crate::layout::StateLayout;

/// One principal of the static token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// Kubeconfig name: `admin`, `controller-manager`, `scheduler`, `kube-proxy`.
    pub kubeconfig_name: &'static str,
    /// Kubernetes user name.
    pub user: String,
    /// Groups (may be empty).
    pub groups: Vec<String>,
    /// Bearer token.
    pub token: String,
}

/// The four token principals.
#[derive(Debug, Clone)]
pub(crate) struct Principals {
    /// Cluster admin (`system:masters`).
    pub admin: Principal,
    /// `system:kube-controller-manager`.
    pub controller_manager: Principal,
    /// `system:kube-scheduler`.
    pub scheduler: Principal,
    /// `system:kube-proxy` (bound to `system:node-proxier` by the default RBAC policy).
    pub kube_proxy: Principal,
}

impl Principals {
    /// Principals with fresh random tokens.
    pub(crate) fn generate() -> anyhow::Result<Self> {
        let principal = |kubeconfig_name, user: &str, groups: &[&str]| -> anyhow::Result<_> {
            Ok(Principal {
                kubeconfig_name,
                user: user.to_string(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                token: random_hex(24)?,
            })
        };
        Ok(Self {
            admin: principal("admin", "admin", &["system:masters"])?,
            controller_manager: principal(
                "controller-manager",
                "system:kube-controller-manager",
                &[],
            )?,
            scheduler: principal("scheduler", "system:kube-scheduler", &[])?,
            kube_proxy: principal("kube-proxy", "system:kube-proxy", &[])?,
        })
    }

    /// All principals in token-file order.
    pub(crate) fn all(&self) -> [&Principal; 4] {
        [
            &self.admin,
            &self.controller_manager,
            &self.scheduler,
            &self.kube_proxy,
        ]
    }

    /// Writes `tokens.csv`, one kubeconfig per principal and the kubelet's (`kubelet`, with
    /// the client certificate `kubelet-client.crt` of the PKI dir).
    pub(crate) fn write(&self, layout: &StateLayout, server: &str) -> anyhow::Result<()> {
        write_private(&layout.token_file(), &token_file(&self.all()))?;
        let ca = layout.pki("ca.crt");
        for principal in self.all() {
            let user = Credentials::Token(&principal.token);
            write_private(
                &layout.kubeconfig(principal.kubeconfig_name),
                &render_kubeconfig(server, &ca, principal.kubeconfig_name, user),
            )?;
        }
        let (cert, key) = (
            layout.pki("kubelet-client.crt"),
            layout.pki("kubelet-client.key"),
        );
        write_private(
            &layout.kubeconfig("kubelet"),
            &render_kubeconfig(server, &ca, "kubelet", Credentials::Cert(&cert, &key)),
        )
    }
}

/// The API server's `--token-auth-file`: `token,user,uid[,"group1,group2"]` per line.
pub(crate) fn token_file(principals: &[&Principal]) -> String {
    principals
        .iter()
        .map(|p| {
            let mut line = format!("{},{},{}", p.token, p.user, p.user);
            if !p.groups.is_empty() {
                line.push_str(&format!(",\"{}\"", p.groups.join(",")));
            }
            line.push('\n');
            line
        })
        .collect()
}

/// How a kubeconfig's user authenticates.
pub(crate) enum Credentials<'a> {
    /// A bearer token.
    Token(&'a str),
    /// A client certificate and its key (files).
    Cert(&'a Path, &'a Path),
}

/// A kubeconfig with one cluster (CA file), one user and one current context.
pub(crate) fn render_kubeconfig(
    server: &str,
    ca_file: &Path,
    user: &str,
    credentials: Credentials<'_>,
) -> String {
    let name = "gomicro-local";
    let credentials = match credentials {
        Credentials::Token(token) => format!("token: \"{token}\""),
        Credentials::Cert(cert, key) => format!(
            "client-certificate: \"{}\"\n    client-key: \"{}\"",
            cert.display(),
            key.display()
        ),
    };
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {name}\n  \
           cluster:\n    \
             server: \"{server}\"\n    \
             certificate-authority: \"{ca}\"\n\
         users:\n\
         - name: {user}\n  \
           user:\n    \
             {credentials}\n\
         contexts:\n\
         - name: {name}\n  \
           context:\n    \
             cluster: {name}\n    \
             user: {user}\n    \
             namespace: default\n\
         current-context: {name}\n",
        ca = ca_file.display(),
    )
}

/// A kube client from a kubeconfig file written by [`Principals::write`].
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    kube::Client::try_from(config).context("building a kube client")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::config::Kubeconfig;

    fn principals() -> Principals {
        Principals::generate().unwrap()
    }

    #[test]
    fn token_file_lists_users_with_quoted_groups() {
        let p = principals();
        let csv = token_file(&p.all());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            format!("{},admin,admin,\"system:masters\"", p.admin.token)
        );
        assert_eq!(
            lines[1],
            format!(
                "{},system:kube-controller-manager,system:kube-controller-manager",
                p.controller_manager.token
            )
        );
        assert!(lines[2].contains(",system:kube-scheduler,"));
        assert_eq!(
            lines[3],
            format!("{},system:kube-proxy,system:kube-proxy", p.kube_proxy.token)
        );
    }

    #[test]
    fn token_file_and_kubeconfigs_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let layout = StateLayout::new(dir.path());
        principals()
            .write(&layout, "https://10.244.0.1:6443")
            .unwrap();
        let mut files = vec![layout.token_file()];
        for name in [
            "admin",
            "controller-manager",
            "scheduler",
            "kube-proxy",
            "kubelet",
        ] {
            files.push(layout.kubeconfig(name));
        }
        for file in files {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
    }

    #[test]
    fn tokens_are_distinct() {
        let p = principals();
        let mut tokens: Vec<&str> = p.all().iter().map(|p| p.token.as_str()).collect();
        tokens.sort();
        tokens.dedup();
        assert_eq!(tokens.len(), 4);
    }

    #[test]
    fn kubeconfig_parses_with_server_ca_and_token() {
        let p = principals();
        let yaml = render_kubeconfig(
            "https://10.244.0.1:6443",
            Path::new("/s/cluster/pki/ca.crt"),
            "scheduler",
            Credentials::Token(&p.scheduler.token),
        );
        let kc = Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("gomicro-local"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.244.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/s/cluster/pki/ca.crt")
        );
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        // The token is a SecretString; read it through AuthInfo's serialised form.
        let user_json = serde_json::to_value(user).unwrap();
        assert_eq!(user_json["token"], p.scheduler.token.as_str());
        assert_eq!(
            kc.contexts[0].context.as_ref().unwrap().user.as_deref(),
            Some("scheduler")
        );
        let yaml = render_kubeconfig(
            "https://10.244.0.1:6443",
            Path::new("/s/ca.crt"),
            "kubelet",
            Credentials::Cert(Path::new("/s/k.crt"), Path::new("/s/k.key")),
        );
        let kc = Kubeconfig::from_yaml(&yaml).unwrap();
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.client_certificate.as_deref(), Some("/s/k.crt"));
        assert_eq!(user.client_key.as_deref(), Some("/s/k.key"));
    }
}

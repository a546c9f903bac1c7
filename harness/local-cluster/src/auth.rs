//! Static bearer tokens of the control-plane principals, the API server's token file and the
//! kubeconfigs that carry those tokens.

use std::path::Path;

use anyhow::Context as _;

use crate::files::{random_hex, write_private};
use crate::layout::StateLayout;

/// One principal of the static token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Kubeconfig name: `admin`, `controller-manager`, `scheduler`, `node`.
    pub kubeconfig_name: &'static str,
    /// Kubernetes user name.
    pub user: String,
    /// Groups (may be empty).
    pub groups: Vec<String>,
    /// Bearer token.
    pub token: String,
}

/// The four control-plane principals.
#[derive(Debug, Clone)]
pub struct Principals {
    /// Cluster admin (`system:masters`).
    pub admin: Principal,
    /// `system:kube-controller-manager`.
    pub controller_manager: Principal,
    /// `system:kube-scheduler`.
    pub scheduler: Principal,
    /// `system:node:<node>` in `system:nodes`.
    pub node: Principal,
}

impl Principals {
    /// Principals with fresh random tokens.
    pub fn generate(node_name: &str) -> anyhow::Result<Self> {
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
            node: principal(
                "node",
                &format!("system:node:{node_name}"),
                &["system:nodes"],
            )?,
        })
    }

    /// All principals in token-file order.
    pub fn all(&self) -> [&Principal; 4] {
        [
            &self.admin,
            &self.controller_manager,
            &self.scheduler,
            &self.node,
        ]
    }

    /// Writes `tokens.csv` and one kubeconfig per principal.
    pub fn write(&self, layout: &StateLayout, server: &str) -> anyhow::Result<()> {
        write_private(&layout.token_file(), &token_file(&self.all()))?;
        let ca = layout.pki("ca.crt");
        for principal in self.all() {
            write_private(
                &layout.kubeconfig(principal.kubeconfig_name),
                &render_kubeconfig(server, &ca, principal),
            )?;
        }
        Ok(())
    }
}

/// The API server's `--token-auth-file`: `token,user,uid[,"group1,group2"]` per line.
pub fn token_file(principals: &[&Principal]) -> String {
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

/// A kubeconfig with one cluster (CA file), one token user and one current context.
pub fn render_kubeconfig(server: &str, ca_file: &Path, principal: &Principal) -> String {
    let name = "gomicro-local";
    let user = principal.kubeconfig_name;
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
             token: \"{token}\"\n\
         contexts:\n\
         - name: {name}\n  \
           context:\n    \
             cluster: {name}\n    \
             user: {user}\n    \
             namespace: default\n\
         current-context: {name}\n",
        ca = ca_file.display(),
        token = principal.token,
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
        Principals::generate("n1").unwrap()
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
            format!(
                "{},system:node:n1,system:node:n1,\"system:nodes\"",
                p.node.token
            )
        );
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
            &p.scheduler,
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
    }
}

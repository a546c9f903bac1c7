//! Parsing and formatting of endpoint URLs `scheme://host:port`.

use std::fmt;

/// A parsed endpoint URL: `scheme://host:port` (IPv6 hosts in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// URL scheme, e.g. `grpc` or `http`.
    pub scheme: String,
    /// Host without brackets.
    pub host: String,
    /// Port number.
    pub port: u16,
}

impl Endpoint {
    /// Parses `scheme://host:port[/...]`; the port is required.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = url.split_once("://").ok_or("missing \"scheme://\"")?;
        if scheme.is_empty() {
            return Err("empty scheme".into());
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or("unclosed '[' in host")?;
            (host, after.strip_prefix(':').ok_or("missing port")?)
        } else {
            authority.rsplit_once(':').ok_or("missing port")?
        };
        if host.is_empty() {
            return Err("empty host".into());
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("invalid port {port:?}"))?;
        Ok(Endpoint {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}",
            self.scheme,
            format_host(&self.host),
            self.port
        )
    }
}

/// Writes a host for use in a URL authority: IPv6 literals are bracketed.
pub fn format_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("grpc://10.0.0.1:9090", "grpc", "10.0.0.1", 9090)]
    #[case("http://[fd00::1]:8080", "http", "fd00::1", 8080)]
    #[case("grpcs://svc.local:443/path", "grpcs", "svc.local", 443)]
    fn parses_valid_endpoints(
        #[case] url: &str,
        #[case] scheme: &str,
        #[case] host: &str,
        #[case] port: u16,
    ) {
        let parsed = Endpoint::parse(url).unwrap();
        assert_eq!(
            (parsed.scheme.as_str(), parsed.host.as_str(), parsed.port),
            (scheme, host, port)
        );
        assert_eq!(parsed.to_string(), url.trim_end_matches("/path"));
    }

    #[rstest]
    #[case("10.0.0.1:9090", "missing \"scheme://\"")]
    #[case("grpc://10.0.0.1", "missing port")]
    #[case("grpc://10.0.0.1:http", "invalid port \"http\"")]
    #[case("grpc://:9090", "empty host")]
    #[case("grpc://[fd00::1:9090", "unclosed '[' in host")]
    fn rejects_invalid_endpoints(#[case] url: &str, #[case] reason: &str) {
        assert_eq!(Endpoint::parse(url).unwrap_err(), reason);
    }
}

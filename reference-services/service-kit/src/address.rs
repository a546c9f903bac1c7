//! The address this instance advertises in its endpoints.

use std::net::IpAddr;

/// `POD_IP` when set, else the first non-loopback address of the host (IPv4 preferred),
/// else `127.0.0.1`. Discovery uses the pod's `status.podIP`, so this only shapes the
/// registered endpoints and the protocols annotation.
pub fn host_ip() -> IpAddr {
    if let Some(ip) = std::env::var("POD_IP")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    let addresses: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map(|all| {
            all.filter_map(|ifaddr| {
                let address = ifaddr.address?;
                address
                    .as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .collect()
        })
        .unwrap_or_default();
    pick_advertised(&addresses)
}

/// The first usable IPv4 address, else the first usable IPv6 one, else loopback.
fn pick_advertised(addresses: &[IpAddr]) -> IpAddr {
    let usable =
        |ip: &&IpAddr| !ip.is_loopback() && !ip.is_unspecified() && !is_ipv6_link_local(ip);
    addresses
        .iter()
        .filter(usable)
        .find(|ip| ip.is_ipv4())
        .or_else(|| addresses.iter().find(usable))
        .copied()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn is_ipv6_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[rstest]
    #[case(&["127.0.0.1", "::1", "fe80::1", "fd00::5", "10.244.0.9"], "10.244.0.9")]
    #[case(&["127.0.0.1", "fe80::1", "fd00::5"], "fd00::5")]
    #[case(&["127.0.0.1", "::1"], "127.0.0.1")]
    #[case(&[], "127.0.0.1")]
    fn picks_the_first_routable_address(#[case] addresses: &[&str], #[case] expected: &str) {
        assert_eq!(pick_advertised(&ips(addresses)).to_string(), expected);
    }
}

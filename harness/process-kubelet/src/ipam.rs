//! Pod IP allocation from the node's pod CIDR (round-robin, like CNI host-local).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::config::Ipv4Cidr;

/// Hands out pod IPs from `.2` upward, skipping the node address, the network and the
/// broadcast address. After wrapping around it reuses released addresses, oldest range first.
#[derive(Debug)]
pub struct IpAllocator {
    cidr: Ipv4Cidr,
    node_ip: Ipv4Addr,
    in_use: BTreeSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
}

/// Raised when no address is free.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("pod CIDR {0} is exhausted")]
pub struct Exhausted(pub Ipv4Cidr);

impl IpAllocator {
    /// A fresh allocator for `cidr`; `node_ip` is never handed out.
    pub fn new(cidr: Ipv4Cidr, node_ip: Ipv4Addr) -> Self {
        Self {
            cidr,
            node_ip,
            in_use: BTreeSet::new(),
            last: None,
        }
    }

    /// The next free address after the last one handed out.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, Exhausted> {
        let first = u32::from(self.cidr.network()) + 2;
        let last = u32::from(self.cidr.broadcast()) - 1;
        if first > last {
            return Err(Exhausted(self.cidr));
        }
        let start = match self.last {
            Some(prev) if u32::from(prev) < last => u32::from(prev) + 1,
            _ => first,
        };
        let span = last - first + 1;
        for step in 0..span {
            let candidate = first + (start - first + step) % span;
            let addr = Ipv4Addr::from(candidate);
            if addr != self.node_ip && !self.in_use.contains(&addr) {
                self.in_use.insert(addr);
                self.last = Some(addr);
                return Ok(addr);
            }
        }
        Err(Exhausted(self.cidr))
    }

    /// Returns an address to the pool (unknown addresses are ignored).
    pub fn release(&mut self, addr: Ipv4Addr) {
        self.in_use.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(cidr: &str, node: [u8; 4]) -> IpAllocator {
        IpAllocator::new(cidr.parse().unwrap(), Ipv4Addr::from(node))
    }

    #[test]
    fn starts_at_dot_two_and_skips_node_ip() {
        let mut ipam = allocator("10.244.0.0/24", [10, 244, 0, 3]);
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 4));
    }

    #[test]
    fn skips_node_ip_at_dot_one_too() {
        let mut ipam = allocator("10.244.0.0/24", [10, 244, 0, 1]);
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 2));
    }

    #[test]
    fn does_not_reuse_released_address_until_wraparound() {
        let mut ipam = allocator("10.244.0.0/29", [10, 244, 0, 1]);
        let a = ipam.allocate().unwrap();
        ipam.release(a);
        let b = ipam.allocate().unwrap();
        assert_ne!(a, b);
        // .2 .. .6 usable: .3 taken, then .4 .5 .6, then wraps to the released .2
        let rest: Vec<_> = (0..4).map(|_| ipam.allocate().unwrap()).collect();
        assert_eq!(rest, [4, 5, 6, 2].map(|n| Ipv4Addr::new(10, 244, 0, n)));
        assert_eq!(
            ipam.allocate(),
            Err(Exhausted("10.244.0.0/29".parse().unwrap()))
        );
    }

    #[test]
    fn never_hands_out_broadcast() {
        let mut ipam = allocator("10.244.0.0/30", [10, 244, 0, 1]);
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 2));
        assert!(ipam.allocate().is_err());
    }
}

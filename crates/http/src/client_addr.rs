//! Who is the client, behind load balancers? The TCP peer, unless the peer
//! is a trusted proxy: then the `X-Forwarded-For` chain is walked from the
//! right, skipping trusted proxies, and the first address not trusted is
//! the client. Entries a client wrote itself (to the left) are never
//! believed, and nothing is believed from an untrusted peer.

use ipnet::IpNet;
use std::net::IpAddr;

/// Networks whose `X-Forwarded-For` is believed (`CUSTOS_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("'{item}' is neither an IP address nor a CIDR network"))?,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address given the TCP peer and the `X-Forwarded-For`
    /// header values, in order.
    pub fn client_addr<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return canonical(peer);
        }
        let hops: Vec<&str> = forwarded_for
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop.parse::<IpAddr>() {
                Ok(ip) => client = ip,
                // A malformed entry ends what can be believed.
                Err(_) => break,
            }
        }
        canonical(client)
    }
}

/// IPv4-mapped IPv6 addresses as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            proxies.client_addr(ip("203.0.113.9"), ["1.2.3.4"].into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_addr(ip("10.0.0.1"), ["1.2.3.4"].into_iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7").unwrap();
        // spoofed, real client, inner proxy; the peer is the outer proxy
        let chain = ["6.6.6.6, 198.51.100.4", "192.0.2.7"];
        assert_eq!(
            proxies.client_addr(ip("10.1.1.1"), chain.into_iter()),
            ip("198.51.100.4")
        );
        assert_eq!(
            proxies.client_addr(ip("10.1.1.1"), std::iter::empty()),
            ip("10.1.1.1")
        );
        assert_eq!(
            proxies.client_addr(ip("10.1.1.1"), ["junk"].into_iter()),
            ip("10.1.1.1")
        );
        assert_eq!(
            proxies.client_addr(ip("::ffff:10.1.1.1"), ["198.51.100.4"].into_iter()),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_untrusted_peer_wins(header in "\\PC{0,80}", a in proptest::prelude::any::<[u8; 4]>()) {
            let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
            let peer = IpAddr::from([203, a[1], a[2], a[3]]);
            proptest::prop_assert_eq!(proxies.client_addr(peer, [header.as_str()].into_iter()), peer);
            let _ = proxies.client_addr(ip("10.0.0.1"), [header.as_str()].into_iter());
        }
    }
}

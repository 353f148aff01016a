//! Which network addresses custos may fetch from on a client's behalf.
//!
//! A client's `jwks_uri` makes the server send requests; without a check,
//! anyone able to register could aim them at loopback, the private network
//! or a cloud metadata endpoint (server-side request forgery).
//!
//! Several IPv6 forms carry an IPv4 address inside them and are delivered,
//! by the host's own stack or by a translator or relay on the way, to that
//! IPv4 address. Each is judged by the IPv4 address it carries, so that
//! `64:ff9b::a9fe:a9fe` is as private as `169.254.169.254`:
//!
//! | form | prefix | where the IPv4 address is | judged as |
//! |---|---|---|---|
//! | IPv4-mapped (RFC 4291 §2.5.5.2) | `::ffff:0:0/96` | last 32 bits | the IPv4 address |
//! | IPv4-translated, SIIT (RFC 7915 / RFC 2765) | `::ffff:0:0:0/96` | last 32 bits | the IPv4 address |
//! | IPv4-compatible, deprecated (RFC 4291 §2.5.5.1) | `::/96` | last 32 bits | the IPv4 address |
//! | NAT64 well-known prefix (RFC 6052) | `64:ff9b::/96` | last 32 bits | the IPv4 address |
//! | 6to4 (RFC 3056) | `2002::/16` | bits 16–47 (segments 1–2) | the IPv4 address |
//! | NAT64 local-use prefix (RFC 8215) | `64:ff9b:1::/48` | depends on the operator's prefix length | never public |
//! | Teredo (RFC 4380) | `2001::/32` | server in bits 32–63, client obfuscated | never public |
//!
//! A NAT64 or 6to4 address that carries a *public* IPv4 address is public:
//! on an IPv6-only host behind DNS64/NAT64, every IPv4-only `jwks_uri`
//! resolves to `64:ff9b::<public v4>`, and refusing those would make such
//! clients impossible to serve. The translator sends the packet to exactly
//! the embedded address, so judging that address is as strict as judging a
//! plain IPv4 answer. (RFC 6052 §3.1 also forbids the well-known prefix for
//! non-global IPv4 addresses, but a translator that ignores it must not
//! become a way in, hence the check.)
//!
//! The local-use NAT64 prefix is refused whatever it carries: RFC 8215 lets
//! the operator choose the prefix length (/48 to /96, RFC 6052 §2.2), so the
//! position of the IPv4 address is unknown here, and IANA lists the prefix
//! as not globally reachable. Teredo is refused because its client address
//! is obfuscated and the tunnel's endpoint is chosen by whoever sends the
//! packets; no `jwks_uri` needs it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for addresses on the public internet; false for loopback, private,
/// link-local (including 169.254.169.254), shared (CGNAT), unspecified,
/// broadcast, multicast, documentation, benchmarking, reserved and
/// unique-local ranges, and for IPv6 forms that embed such an IPv4 address
/// (see the module documentation).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Embedded::V4(v4) => is_public_v4(v4),
            Embedded::Refused => false,
            Embedded::Plain => is_public_v6(v6),
        },
    }
}

/// What an IPv6 address says about an IPv4 address inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedded {
    /// The address is delivered to this IPv4 address; judge that.
    V4(Ipv4Addr),
    /// A translation or tunnelling form that is never fetched from.
    Refused,
    /// A plain IPv6 address.
    Plain,
}

fn embedded_ipv4(ip: Ipv6Addr) -> Embedded {
    let s = ip.segments();
    let last32 = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (SIIT translated).
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => Embedded::V4(last32()),
        // ::a.b.c.d (compatible); `::` and `::1` land on 0.0.0.0 and
        // 0.0.0.1, which are not public either.
        [0, 0, 0, 0, 0, 0, ..] => Embedded::V4(last32()),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix).
        [0x0064, 0xff9b, 0, 0, 0, 0, ..] => Embedded::V4(last32()),
        // 64:ff9b:1::/48 (NAT64 local-use prefix).
        [0x0064, 0xff9b, 0x0001, ..] => Embedded::Refused,
        // 2002:aabb:ccdd::/48 (6to4).
        [0x2002, hi, lo, ..] => Embedded::V4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        // 2001::/32 (Teredo).
        [0x2001, 0x0000, ..] => Embedded::Refused,
        _ => Embedded::Plain,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24: IETF protocol assignments (RFC 6890).
        || (a == 192 && b == 0 && c == 0)
        // 192.88.99.0/24: the 6to4 relay anycast, deprecated (RFC 7526).
        || (a == 192 && b == 88 && c == 99)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let first = s[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local.
        || (first & 0xfe00) == 0xfc00
        // fe80::/10 link-local and fec0::/10 site-local (deprecated).
        || (first & 0xff80) == 0xfe80
        // 2001:db8::/32 and 3fff::/20 documentation (RFC 3849, RFC 9637).
        || (first == 0x2001 && s[1] == 0x0db8)
        || (first == 0x3fff && s[1] & 0xf000 == 0)
        // 2001:2::/48 benchmarking (RFC 5180).
        || (first == 0x2001 && s[1] == 0x0002 && s[2] == 0)
        // 100::/64 discard-only (RFC 6666).
        || (first == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn public(text: &str) -> bool {
        is_public_ip(text.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.0.8",
            "192.88.99.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "2001:db8::1",
            "3fff::1",
            "3fff:fff::1",
            "2001:2::1",
            "100::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!public(text), "{text}");
        }
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "3ffe::1",
            "3fff:1000::1",
            "2001:3::1",
            "2001:2:1::1",
            "101::1",
            "100:0:0:1::1",
        ] {
            assert!(public(text), "{text}");
        }
    }

    /// Each IPv6 form embedding an IPv4 address, for a private and a
    /// public IPv4 address: the form follows the embedded address.
    #[test]
    fn ipv6_forms_embedding_ipv4_are_judged_by_the_ipv4_address() {
        let table = [
            // (address, public?)
            // IPv4-mapped.
            ("::ffff:10.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.8.8", true),
            // SIIT IPv4-translated, ::ffff:0:0/96.
            ("::ffff:0:127.0.0.1", false),
            ("::ffff:0:192.168.0.1", false),
            ("::ffff:0:a9fe:a9fe", false),
            ("::ffff:0:8.8.8.8", true),
            // IPv4-compatible (deprecated).
            ("::127.0.0.1", false),
            ("::10.0.0.1", false),
            ("::a9fe:a9fe", false),
            ("::0.0.0.2", false),
            ("::8.8.8.8", true),
            // NAT64 well-known prefix.
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::10.1.2.3", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::100.64.0.1", false),
            ("64:ff9b::0.0.0.0", false),
            ("64:ff9b::8.8.8.8", true),
            ("64:ff9b::1.1.1.1", true),
            // Not the NAT64 prefix: other bits set between.
            ("64:ff9b:0:0:1::8.8.8.8", true),
            // NAT64 local-use prefix: refused whatever it carries.
            ("64:ff9b:1::8.8.8.8", false),
            ("64:ff9b:1:808:8:800::", false),
            ("64:ff9b:1:ffff::1", false),
            // 6to4: the IPv4 address is in segments 1-2.
            ("2002:7f00:1::1", false),
            ("2002:a00:1::", false),
            ("2002:c0a8:101:1::1", false),
            ("2002:a9fe:a9fe::", false),
            ("2002:808:808::1", true),
            ("2002:808:808:ffff:ffff:ffff:ffff:ffff", true),
            // Teredo: refused.
            ("2001::1", false),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
            // Beside Teredo, other 2001: space stays public.
            ("2001:4860:4860::8888", true),
        ];
        for (text, expected) in table {
            assert_eq!(public(text), expected, "{text}");
        }
    }

    fn embeddings(v4: Ipv4Addr, rest: u128) -> Vec<Ipv6Addr> {
        let a = u32::from(v4) as u128;
        vec![
            v4.to_ipv6_mapped(),
            v4.to_ipv6_compatible(),
            Ipv6Addr::from((0xffffu128 << 32 << 16) | a), // ::ffff:0:a.b.c.d
            Ipv6Addr::from((0x0064_ff9bu128 << 96) | a),
            // 6to4 with any subnet and interface bits.
            Ipv6Addr::from((0x2002u128 << 112) | (a << 80) | (rest & ((1u128 << 80) - 1))),
        ]
    }

    fn non_public_v4() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            any::<u32>().prop_map(|x| Ipv4Addr::from(0x0a00_0000 | (x & 0x00ff_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xac10_0000 | (x & 0x000f_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xc0a8_0000 | (x & 0x0000_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0x7f00_0000 | (x & 0x00ff_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xa9fe_0000 | (x & 0x0000_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0x6440_0000 | (x & 0x003f_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(x & 0x00ff_ffff)),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xf000_0000 | (x & 0x0fff_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xe000_0000 | (x & 0x0fff_ffff))),
        ]
    }

    proptest! {
        /// For every private or special IPv4 address, every IPv6 form that
        /// embeds it is not public.
        #[test]
        fn no_embedding_of_a_non_public_v4_is_public(v4 in non_public_v4(), rest in any::<u128>()) {
            prop_assert!(!is_public_v4(v4));
            for v6 in embeddings(v4, rest) {
                prop_assert!(!is_public_ip(IpAddr::V6(v6)), "{v6} embeds {v4}");
            }
        }

        /// For any IPv4 address at all, each embedding is exactly as public
        /// as the address it embeds.
        #[test]
        fn every_embedding_follows_its_v4(v4 in any::<u32>().prop_map(Ipv4Addr::from), rest in any::<u128>()) {
            let expected = is_public_ip(IpAddr::V4(v4));
            for v6 in embeddings(v4, rest) {
                prop_assert_eq!(is_public_ip(IpAddr::V6(v6)), expected, "{} embeds {}", v6, v4);
            }
        }

        /// The local-use NAT64 prefix and Teredo are never public,
        /// whatever the other bits are.
        #[test]
        fn local_nat64_and_teredo_are_never_public(rest in any::<u128>()) {
            let local_nat64 = Ipv6Addr::from((0x0064_ff9b_0001u128 << 80) | (rest & ((1u128 << 80) - 1)));
            let teredo = Ipv6Addr::from((0x2001_0000u128 << 96) | (rest & ((1u128 << 96) - 1)));
            prop_assert!(!is_public_ip(IpAddr::V6(local_nat64)), "{}", local_nat64);
            prop_assert!(!is_public_ip(IpAddr::V6(teredo)), "{}", teredo);
        }
    }
}

//! ssrf.rs: which network addresses the watcher may reach (and which article links it may hand
//! on). Redirects, permanent moves, sitemap children, discovered feeds and item links come from
//! strangers' servers; none of them may steer the watcher (or the crawler behind the generated
//! configs) at loopback, private, link-local or metadata addresses.
//!
//! The rule: a non-public address ([`is_non_public`]) is reachable only with
//! `[fetch] allow_private_networks = true`, when it lies in `[fetch] allow_networks`, or when the
//! URL's host is, as written, the host of a configured source (case-insensitive, port ignored).
//! It is enforced by [`GuardedResolver`] (the HTTP client connects only to the addresses it
//! returns, so DNS rebinding does not pass) and by [`NetworkRule::check_url`] for IP literals,
//! before the first request and before every redirect hop. Item links get [`NetworkRule::link_refusal`]:
//! no DNS lookups, only what the link says.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::config::{FetchSettings, parse_network};
use crate::identity::Item;

/// A request refused because it would reach a non-public address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused to reach `{host}`: {ip} is not a public address; hint: allow it with [fetch] allow_networks = [\"{ip}/{bits}\"] or [fetch] allow_private_networks = true",
    bits = if ip.is_ipv4() { 32 } else { 128 }
)]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
}

/// Why an item link is dropped before it reaches a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The host is a non-public IP literal.
    NonPublicAddress,
    /// `localhost` or a name under `.localhost`.
    Localhost,
    /// A name without a dot (resolved on the local network, if at all).
    SingleLabel,
    /// A name under `.local` (mDNS).
    Local,
}

impl LinkRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRefusal::NonPublicAddress => "non-public address",
            LinkRefusal::Localhost => "localhost",
            LinkRefusal::SingleLabel => "single-label host",
            LinkRefusal::Local => ".local host",
        }
    }
}

/// True for addresses the public internet cannot route to: loopback, RFC 1918, 100.64.0.0/10,
/// link-local (169.254.0.0/16, the cloud metadata address among them), 0.0.0.0/8, multicast,
/// 240.0.0.0/4 and broadcast, fc00::/7, fe80::/10, the unspecified addresses, and the IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`)
/// forms of the IPv4 ones.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_non_public(v4),
        IpAddr::V6(v6) => v6_non_public(v6),
    }
}

fn v4_non_public(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || (a == 100 && (b & 0xc0) == 64)
        || ip.is_link_local()
        || a == 0
        || ip.is_multicast()
        || a >= 240
}

fn v6_non_public(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return v4_non_public(v4);
    }
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        // Deprecated site-local, still routed inside some networks.
        || (s[0] & 0xffc0) == 0xfec0
        // The local-use NAT64 prefix (RFC 8215) translates to whatever the operator chose.
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible or well-known NAT64 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
    let compatible = s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    (compatible || nat64).then_some(tail)
}

/// The rule, built once from `[fetch]` and the configured sources.
#[derive(Debug, Clone, Default)]
pub struct NetworkRule {
    allow_private: bool,
    allow_networks: Vec<IpNet>,
    /// Hosts of configured sources as written, lowercased (`[::1]` for IPv6 literals).
    source_hosts: HashSet<String>,
    /// The configured proxy's host: the client must reach it wherever it is.
    proxy_host: Option<String>,
}

impl NetworkRule {
    /// `allow_networks` entries that do not parse are skipped: `check` reports them.
    pub fn new<'a>(
        settings: &FetchSettings,
        source_urls: impl IntoIterator<Item = &'a str>,
    ) -> NetworkRule {
        let source_hosts = source_urls
            .into_iter()
            .filter_map(|u| Url::parse(u.trim()).ok())
            .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
            .collect();
        NetworkRule {
            allow_private: settings.allow_private_networks,
            allow_networks: settings
                .allow_networks
                .iter()
                .filter_map(|n| parse_network(n))
                .collect(),
            source_hosts,
            proxy_host: settings
                .proxy
                .as_deref()
                .and_then(|p| Url::parse(p).ok())
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase)),
        }
    }

    /// True when `ip` may be reached whatever the host: public, or allowed by the settings.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if !is_non_public(ip) || self.allow_private {
            return true;
        }
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allow_networks
            .iter()
            .any(|n| n.contains(&ip) || v4.is_some_and(|v4| n.contains(&v4)))
    }

    /// True when `host` (as written in a URL, any case) is the host of a configured source.
    pub fn trusts_host(&self, host: &str) -> bool {
        self.source_hosts.contains(&host.to_ascii_lowercase())
    }

    /// Checks a URL about to be requested: an IP-literal host must be permitted or trusted.
    /// (Names are checked when they resolve, by [`GuardedResolver`].)
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        let host = url.host_str().unwrap_or_default();
        if self.permits(ip) || self.trusts_host(host) {
            Ok(())
        } else {
            Err(Refused {
                host: host.to_string(),
                ip,
            })
        }
    }

    /// Whether an item link may reach a config, judged from the link alone (no DNS lookup).
    /// `None` when it may.
    pub fn link_refusal(&self, link: &Url) -> Option<LinkRefusal> {
        let host = link.host_str()?;
        if self.trusts_host(host) {
            return None;
        }
        match link.host()? {
            Host::Ipv4(v4) if self.permits(IpAddr::V4(v4)) => None,
            Host::Ipv6(v6) if self.permits(IpAddr::V6(v6)) => None,
            Host::Domain(_) if self.allow_private => None,
            other => host_refusal(other),
        }
    }

    /// Whether a permanent redirect from `from` to `to` may move the source: never from https to
    /// http, nor onto another host that is non-public (a non-public address, `localhost`, a
    /// single-label or `.local` name), whatever the allowances: the hop is followed when they
    /// allow it, but the source keeps its URL.
    pub fn may_move(&self, from: &Url, to: &Url) -> Result<(), &'static str> {
        if from.scheme() == "https" && to.scheme() != "https" {
            return Err("it would downgrade https to http");
        }
        let same_host = from.host_str().map(str::to_ascii_lowercase)
            == to.host_str().map(str::to_ascii_lowercase);
        match to.host().and_then(host_refusal) {
            Some(why) if !same_host => Err(why.as_str()),
            _ => Ok(()),
        }
    }

    /// Filters resolved addresses: all of them for a trusted host, else the permitted ones; an
    /// error naming the first refused address when none is left.
    pub fn filter_resolved(
        &self,
        host: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let proxy = self.proxy_host.as_deref() == Some(host.to_ascii_lowercase().as_str());
        if proxy || self.trusts_host(host) {
            return Ok(addrs);
        }
        let (kept, refused): (Vec<_>, Vec<_>) =
            addrs.into_iter().partition(|a| self.permits(a.ip()));
        match (kept.is_empty(), refused.first()) {
            (true, Some(first)) => Err(Refused {
                host: host.to_string(),
                ip: first.ip(),
            }),
            _ => Ok(kept),
        }
    }
}

/// Why `host`, judged by how it is written, may be non-public: a non-public address, `localhost`,
/// a `.local` or single-label name.
fn host_refusal(host: Host<&str>) -> Option<LinkRefusal> {
    match host {
        Host::Ipv4(v4) => is_non_public(IpAddr::V4(v4)).then_some(LinkRefusal::NonPublicAddress),
        Host::Ipv6(v6) => is_non_public(IpAddr::V6(v6)).then_some(LinkRefusal::NonPublicAddress),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                Some(LinkRefusal::Localhost)
            } else if name == "local" || name.ends_with(".local") {
                Some(LinkRefusal::Local)
            } else if !name.contains('.') {
                Some(LinkRefusal::SingleLabel)
            } else {
                None
            }
        }
    }
}

/// Drops the items whose link the rule refuses (see [`NetworkRule::link_refusal`]), logging
/// each; returns how many went.
pub fn drop_refused_links(rule: &NetworkRule, items: &mut Vec<Item>) -> usize {
    let before = items.len();
    items.retain(|item| {
        let Some(link) = item.canonical_url.as_deref() else {
            return true;
        };
        let refusal = match Url::parse(link) {
            Ok(url) => rule.link_refusal(&url),
            Err(_) => Some(LinkRefusal::NonPublicAddress),
        };
        if let Some(why) = refusal {
            tracing::warn!(
                url = %crate::printable::printable(link),
                reason = why.as_str(),
                "item link refused: it points into a private network; recorded, not delivered; hint: [fetch] allow_networks"
            );
        }
        refusal.is_none()
    });
    before - items.len()
}

/// The HTTP client's DNS resolver: the system resolver, then [`NetworkRule::filter_resolved`].
/// The client connects only to what this returns.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    rule: Arc<NetworkRule>,
}

impl GuardedResolver {
    pub fn new(rule: Arc<NetworkRule>) -> GuardedResolver {
        GuardedResolver { rule }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rule = self.rule.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = rule.filter_resolved(&host, found)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The [`Refused`] somewhere in an error's cause chain (the resolver's error arrives wrapped).
pub fn refused_in(err: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_non_public_range_is_classified() {
        for a in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.0.1",
            "64:ff9b:1::1",
        ] {
            assert!(is_non_public(ip(a)), "{a} should be non-public");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.255.255",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_non_public(ip(a)), "{a} should be public");
        }
    }

    fn settings(private: bool, networks: &[&str]) -> FetchSettings {
        FetchSettings {
            allow_private_networks: private,
            allow_networks: networks.iter().map(|s| s.to_string()).collect(),
            ..FetchSettings::default()
        }
    }

    #[test]
    fn allow_settings_and_source_hosts_open_the_rule() {
        let strict = NetworkRule::new(&settings(false, &[]), ["http://127.0.0.1:8080/feed"]);
        assert!(!strict.permits(ip("127.0.0.2")));
        assert!(strict.permits(ip("8.8.8.8")));
        // The source's own host, as written, any port.
        assert!(
            strict
                .check_url(&Url::parse("http://127.0.0.1:9/x").unwrap())
                .is_ok()
        );
        let err = strict
            .check_url(&Url::parse("http://127.0.0.2:8080/x").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("allow_networks"), "{err}");
        assert!(err.to_string().contains("127.0.0.2/32"), "{err}");

        let nets = NetworkRule::new(&settings(false, &["127.0.0.2/32", "fd00::/8"]), []);
        assert!(nets.permits(ip("127.0.0.2")));
        assert!(nets.permits(ip("::ffff:127.0.0.2")));
        assert!(nets.permits(ip("fd00::5")));
        assert!(!nets.permits(ip("127.0.0.3")));

        let open = NetworkRule::new(&settings(true, &[]), []);
        assert!(open.permits(ip("169.254.169.254")));
    }

    #[test]
    fn source_hosts_match_case_insensitively_as_written() {
        let rule = NetworkRule::new(
            &settings(false, &[]),
            ["http://NAS.Lan:8080/feed", "http://[::1]:3000/"],
        );
        assert!(rule.trusts_host("nas.lan"));
        assert!(rule.trusts_host("[::1]"));
        assert!(
            rule.check_url(&Url::parse("http://[::1]/").unwrap())
                .is_ok()
        );
        // Written differently is not the same host.
        assert!(
            rule.check_url(&Url::parse("http://[0:0:0:0:0:ffff:7f00:1]/").unwrap())
                .is_err()
        );
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let rule = NetworkRule::new(&settings(false, &[]), ["http://nas.lan/feed"]);
        let sa = |s: &str| SocketAddr::new(ip(s), 0);
        let mixed = vec![sa("10.0.0.1"), sa("93.184.216.34")];
        assert_eq!(
            rule.filter_resolved("cdn.example", mixed.clone()).unwrap(),
            vec![sa("93.184.216.34")]
        );
        let err = rule
            .filter_resolved("rebind.example", vec![sa("169.254.169.254")])
            .unwrap_err();
        assert_eq!(err.ip, ip("169.254.169.254"));
        // A configured source's host may resolve anywhere.
        assert_eq!(
            rule.filter_resolved("NAS.lan", mixed.clone()).unwrap(),
            mixed
        );
    }

    #[test]
    fn item_links_are_judged_without_dns() {
        let rule = NetworkRule::new(&settings(false, &[]), ["http://127.0.0.1:1/feed"]);
        let refusal = |u: &str| rule.link_refusal(&Url::parse(u).unwrap());
        assert_eq!(
            refusal("http://169.254.169.254/latest/meta-data/"),
            Some(LinkRefusal::NonPublicAddress)
        );
        assert_eq!(
            refusal("http://[::ffff:10.0.0.1]/"),
            Some(LinkRefusal::NonPublicAddress)
        );
        assert_eq!(
            refusal("http://localhost:8080/"),
            Some(LinkRefusal::Localhost)
        );
        assert_eq!(refusal("http://intranet/"), Some(LinkRefusal::SingleLabel));
        assert_eq!(refusal("http://printer.local/"), Some(LinkRefusal::Local));
        assert_eq!(refusal("https://blog.example.com/post"), None);
        assert_eq!(refusal("http://127.0.0.1:5/post"), None);
        let open = NetworkRule::new(&settings(true, &[]), []);
        assert_eq!(
            open.link_refusal(&Url::parse("http://intranet/").unwrap()),
            None
        );
    }

    #[test]
    fn moves_never_downgrade_nor_go_private() {
        let rule = NetworkRule::new(&settings(false, &[]), ["https://blog.example.com/feed"]);
        let u = |s: &str| Url::parse(s).unwrap();
        let from = u("https://blog.example.com/feed");
        assert!(
            rule.may_move(&from, &u("https://cdn.example.net/feed"))
                .is_ok()
        );
        assert!(
            rule.may_move(&from, &u("http://blog.example.com/feed"))
                .is_err()
        );
        assert!(rule.may_move(&from, &u("https://10.0.0.5/feed")).is_err());
        assert!(rule.may_move(&from, &u("https://localhost/feed")).is_err());
        let lan = u("http://192.168.1.10/feed");
        let lan_rule = NetworkRule::new(&settings(false, &[]), [lan.as_str()]);
        // A LAN source moving to its public CDN is fine, so is a move on its own host.
        assert!(
            lan_rule
                .may_move(&lan, &u("https://cdn.example.net/feed"))
                .is_ok()
        );
        assert!(
            lan_rule
                .may_move(&lan, &u("http://192.168.1.10:8080/feed"))
                .is_ok()
        );
    }

    #[test]
    fn invalid_networks_are_reported() {
        let s = settings(false, &["10.0.0.0/8", "::1", "10.0.0.0/33", "nas"]);
        assert_eq!(s.invalid_networks(), ["10.0.0.0/33", "nas"]);
    }
}

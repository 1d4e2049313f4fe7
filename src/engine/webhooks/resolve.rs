//! Targets checked against server-side request forgery.
//!
//! At creation, [`check_target`] parses the URL (absolute, https, no
//! credentials or fragment), resolves its host and refuses it if any
//! address is not public ([`crate::domain::webhooks::address`]). At each
//! delivery the HTTP client resolves names through [`Guarded`], which
//! applies the same check to the addresses it hands to the connector, so
//! that a name re-pointed at an internal address after creation (DNS
//! rebinding) is refused before any connection; an address literal in the
//! URL is checked by the worker itself, since the client does not resolve
//! it. Redirects are not followed and proxies from the environment are not
//! used: the connection goes where the check looked. `allow_private`
//! (`--webhook-allow-private`) lifts the address check and allows http.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhooks::address::non_public;

/// A future of resolved addresses.
pub type Lookup = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Resolves host names (the system's resolver; tests bring their own).
pub trait HostResolver: Send + Sync + 'static {
    /// Every address of `host`.
    fn lookup(&self, host: &str) -> Lookup;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn lookup(&self, host: &str) -> Lookup {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A target refused: the host resolves to a non-public address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Why `ip` (an address of `host`) may not be reached, unless private
/// targets are allowed.
pub fn refuse(host: &str, ip: IpAddr, allow_private: bool) -> Option<Refused> {
    if allow_private {
        return None;
    }
    non_public(ip).map(|why| {
        let named = if host == ip.to_string() {
            format!("{ip} is {why}")
        } else {
            format!("{host} resolves to {ip}, {why}")
        };
        Refused(format!(
            "{named}: refused (a server-side request forgery guard; the operator may allow \
             private targets with --webhook-allow-private)"
        ))
    })
}

/// Checks a subscription's URL; returns it parsed, or why it is refused.
pub async fn check_target(
    url: &str,
    allow_private: bool,
    resolver: &dyn HostResolver,
) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("'{url}' is not an absolute URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err("must use https (plain http only when the server runs with \
                 --webhook-allow-private)"
                .into());
        }
        other => return Err(format!("scheme '{other}' is not supported: use https")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not carry a fragment (#...)".into());
    }
    let addresses = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => {
            let addresses = resolver
                .lookup(name)
                .await
                .map_err(|e| format!("host '{name}' does not resolve: {e}"))?;
            if addresses.is_empty() {
                return Err(format!("host '{name}' has no address"));
            }
            addresses
        }
        None => return Err("has no host".into()),
    };
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']']);
    for ip in addresses {
        if let Some(refused) = refuse(host, ip, allow_private) {
            return Err(refused.0);
        }
    }
    Ok(parsed)
}

/// The HTTP client's resolver: every address is checked before the
/// connector sees it.
pub struct Guarded {
    /// The resolver underneath.
    pub resolver: Arc<dyn HostResolver>,
    /// `--webhook-allow-private`.
    pub allow_private: bool,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let lookup = self.resolver.lookup(&host);
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses = lookup.await?;
            if addresses.is_empty() {
                return Err(format!("host '{host}' has no address").into());
            }
            for ip in &addresses {
                if let Some(refused) = refuse(&host, *ip, allow_private) {
                    return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Fixed answers.
    struct Hosts(HashMap<&'static str, Vec<IpAddr>>);

    impl HostResolver for Hosts {
        fn lookup(&self, host: &str) -> Lookup {
            let found = self.0.get(host).cloned();
            Box::pin(async move {
                found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown host"))
            })
        }
    }

    fn hosts() -> Hosts {
        Hosts(HashMap::from([
            ("hooks.example.com", vec!["93.184.215.14".parse().unwrap()]),
            (
                "mixed.example.com",
                vec![
                    "93.184.215.14".parse().unwrap(),
                    "10.0.0.7".parse().unwrap(),
                ],
            ),
            ("localhost", vec!["127.0.0.1".parse().unwrap()]),
        ]))
    }

    async fn check(url: &str, allow: bool) -> Result<Url, String> {
        check_target(url, allow, &hosts()).await
    }

    #[tokio::test]
    async fn public_https_targets_pass() {
        let url = check("https://hooks.example.com/spoc?x=1", false)
            .await
            .unwrap();
        assert_eq!(url.as_str(), "https://hooks.example.com/spoc?x=1");
        assert!(check("https://8.8.8.8/hook", false).await.is_ok());
    }

    #[tokio::test]
    async fn forgery_targets_are_refused_with_the_reason() {
        for (url, says) in [
            ("http://hooks.example.com/", "must use https"),
            ("ftp://hooks.example.com/", "scheme 'ftp'"),
            ("hooks.example.com/x", "not an absolute URL"),
            ("https://u:p@hooks.example.com/", "user name or password"),
            ("https://hooks.example.com/#x", "fragment"),
            (
                "https://localhost/",
                "localhost resolves to 127.0.0.1, a loopback address",
            ),
            ("https://127.0.0.1:8080/", "127.0.0.1 is a loopback address"),
            ("https://[::1]/", "::1 is a loopback address"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://0x7f.1/", "loopback"),
            ("https://mixed.example.com/", "10.0.0.7, a private address"),
            ("https://nowhere.example.com/", "does not resolve"),
        ] {
            let err = check(url, false).await.unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn the_operator_may_allow_private_targets_and_http() {
        assert!(check("http://localhost:9000/hook", true).await.is_ok());
        assert!(check("https://10.1.2.3/", true).await.is_ok());
        assert!(check("ftp://localhost/", true).await.is_err());
    }

    #[tokio::test]
    async fn the_client_resolver_refuses_before_connecting() {
        let guarded = Guarded {
            resolver: Arc::new(hosts()),
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        let err = guarded.resolve(name).await.err().unwrap();
        assert!(err.to_string().contains("loopback"), "{err}");
        let name: Name = "hooks.example.com".parse().unwrap();
        let addrs: Vec<SocketAddr> = guarded.resolve(name).await.ok().unwrap().collect();
        assert_eq!(addrs, ["93.184.215.14:0".parse().unwrap()]);
    }
}

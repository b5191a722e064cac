//! postscreen(8)'s DNS list test: before the greeting, the client's
//! address is looked up in every `postscreen_dnsbl_sites` zone at once,
//! the weights of the zones that list it are summed, and the sum is
//! compared with the threshold. Results are cached per address for
//! `postscreen_dnsbl_ttl`, so a returning client costs no lookups
//! ("PASS OLD").

use super::dnsbl::Site;
use crate::config;
use crate::dns::Resolver;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screened {
    /// Below the threshold: `cached` when no lookup was needed.
    Pass { cached: bool, rank: i32 },
    /// At or above the threshold; the zones that listed the client.
    Listed { rank: i32, sites: Vec<String> },
}

#[derive(Default)]
pub struct Postscreen {
    cache: Mutex<Cache>,
    /// Clients that passed the pregreet test, and when.
    greeted: Mutex<Cache<()>>,
}

struct Cache<T = Screened> {
    results: HashMap<IpAddr, (Instant, T)>,
    /// Insertion order, for eviction at the size bound.
    order: VecDeque<IpAddr>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            results: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T: Clone> Cache<T> {
    fn get(&self, ip: IpAddr, ttl: Duration) -> Option<T> {
        let (at, value) = self.results.get(&ip)?;
        (at.elapsed() < ttl).then(|| value.clone())
    }

    fn put(&mut self, ip: IpAddr, value: T, bound: usize) {
        if self.results.insert(ip, (Instant::now(), value)).is_none() {
            self.order.push_back(ip);
        }
        while self.results.len() > bound.max(1) {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.results.remove(&old);
        }
    }
}

/// Parses `postscreen_dnsbl_sites`.
pub fn sites(config: &config::Postscreen) -> Result<Vec<Site>, String> {
    Site::parse_all(&config.postscreen_dnsbl_sites)
}

impl Postscreen {
    /// Scores `ip` against `sites` (an empty list passes at once).
    pub async fn dnsbl(
        &self,
        config: &config::Postscreen,
        sites: &[Site],
        dns: &dyn Resolver,
        ip: IpAddr,
    ) -> Screened {
        if sites.is_empty() {
            return Screened::Pass {
                cached: false,
                rank: 0,
            };
        }
        let ttl = config.postscreen_dnsbl_ttl.0;
        if let Some(hit) = self.cached(ip, ttl) {
            return match hit {
                Screened::Pass { rank, .. } => Screened::Pass { cached: true, rank },
                listed => listed,
            };
        }
        let lookups = futures_join(sites, dns, ip);
        // Postfix: lookups that did not finish count as not listed.
        let answers = tokio::time::timeout(config.postscreen_dnsbl_timeout.0, lookups)
            .await
            .unwrap_or_default();
        let mut rank = 0i32;
        let mut listed_by = Vec::new();
        for (site, listed) in sites.iter().zip(answers) {
            if listed {
                rank = rank.saturating_add(site.weight);
                listed_by.push(site.zone.clone());
            }
        }
        let result = if rank >= config.postscreen_dnsbl_threshold {
            Screened::Listed {
                rank,
                sites: listed_by,
            }
        } else {
            Screened::Pass {
                cached: false,
                rank,
            }
        };
        self.remember(ip, result.clone(), config.postscreen_cache_size);
        result
    }

    fn cached(&self, ip: IpAddr, ttl: Duration) -> Option<Screened> {
        self.cache.lock().ok()?.get(ip, ttl)
    }

    fn remember(&self, ip: IpAddr, result: Screened, bound: usize) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(ip, result, bound);
        }
    }

    /// Whether `ip` passed the pregreet test within `ttl` (postscreen's
    /// `postscreen_greet_ttl`: a returning client is not made to wait).
    pub fn greeted(&self, ip: IpAddr, ttl: Duration) -> bool {
        self.greeted
            .lock()
            .ok()
            .and_then(|c| c.get(ip, ttl))
            .is_some()
    }

    pub fn remember_greeted(&self, ip: IpAddr, bound: usize) {
        if let Ok(mut cache) = self.greeted.lock() {
            cache.put(ip, (), bound);
        }
    }
}

/// Every site at once; `true` where the client is listed. A failed
/// lookup is not a listing.
async fn futures_join(sites: &[Site], dns: &dyn Resolver, ip: IpAddr) -> Vec<bool> {
    let mut set = Vec::with_capacity(sites.len());
    for site in sites {
        set.push(async move { matches!(site.check_ip(dns, ip).await, Ok(Some(_))) });
    }
    join_all(set).await
}

/// A small join-all for a handful of futures (no extra crate).
async fn join_all<F: std::future::Future<Output = bool>>(futures: Vec<F>) -> Vec<bool> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<bool>> = vec![None; futures.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().map(|d| d.unwrap_or(false)).collect()
}

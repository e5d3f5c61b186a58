//! Failed requests are audited without letting anyone flood the log (issue 11, finding 6).
//!
//! Every rejected token, cross-tenant attempt, refused role and rejected invitation is an
//! audit entry, and an entry is an fsynced commit: unchecked, 200 anonymous requests made
//! 200 rows, and one tenant's 50 attempts 50 rows in its victim's log. So failures count
//! against two budgets per window: their **source** (the peer address; an IPv6 peer by its
//! /64) and their **target** (the tenant whose log receives the entry). The first `burst`
//! failures of a budget in a window are audited one by one; later ones are counted and
//! written as **one summary entry** (same tenant, actor and action; the resource says how
//! many) when the window closes, so nothing leaves the record unaccounted. A source over
//! its budget is also answered 429 `rate_limited` with `Retry-After` until its window
//! ends; a valid token from the same address still passes (failures are counted only
//! once a request has failed), so one noisy neighbour behind a shared address does not
//! lock out a legitimate tenant.
//!
//! Must not: write to the log itself (the caller does, outside the lock), or hold its lock
//! across an await or an append.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::audit::AuditEvent;

/// How many failures a source or a target may have audited one by one per window.
#[derive(Clone, Copy, Debug)]
pub struct FailureLimits {
    pub burst: u32,
    pub window: Duration,
}

impl Default for FailureLimits {
    fn default() -> FailureLimits {
        FailureLimits {
            burst: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// Whose budget a failure counts against.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Budget {
    /// The peer address (an IPv6 peer by its /64: one host holds a whole /64).
    Source(IpAddr),
    /// The tenant whose audit log the entry goes to.
    Target(String),
}

impl Budget {
    pub fn source(peer: Option<IpAddr>) -> Budget {
        Budget::Source(match peer {
            Some(IpAddr::V6(address)) if address.to_ipv4_mapped().is_none() => {
                let prefix = u128::from(address) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
            Some(IpAddr::V6(address)) => IpAddr::V4(
                address
                    .to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ),
            Some(address) => address,
            None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        })
    }
}

/// What to do with one failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Audit it as an entry of its own.
    Record,
    /// Count it into the window's summary entry; the budget's window ends in this many
    /// seconds (at least 1).
    Coalesce { retry_after_seconds: u64 },
}

/// The failure budgets and the counts waiting for their summary entries.
pub struct FailureLimiter {
    limits: FailureLimits,
    // std mutex: held for a few map operations, never across an await or an audit append.
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    windows: HashMap<Budget, Window>,
    summaries: HashMap<SummaryKey, Summary>,
}

struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SummaryKey {
    tenant_id: Option<String>,
    actor: String,
    action: &'static str,
}

struct Summary {
    first: Instant,
    count: u64,
    outcome: crate::audit::Outcome,
}

/// Beyond this many budgets or summaries held at once, the oldest windows are forgotten
/// early (their summaries are still written): memory stays bounded whatever the number of
/// addresses a client sends from.
const MAX_TRACKED: usize = 100_000;

impl FailureLimiter {
    pub fn new(limits: FailureLimits) -> FailureLimiter {
        FailureLimiter {
            limits,
            state: Mutex::new(LimiterState::default()),
        }
    }

    pub fn window(&self) -> Duration {
        self.limits.window
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one failure against `budget`: recorded while the budget's window has room.
    pub fn admit(&self, budget: &Budget) -> Admission {
        let now = Instant::now();
        let window_length = self.limits.window;
        let mut state = self.state();
        if state.windows.len() >= MAX_TRACKED {
            state
                .windows
                .retain(|_, window| now.duration_since(window.started) < window_length);
        }
        let window = state.windows.entry(budget.clone()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= window_length {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
        if window.failures <= self.limits.burst {
            Admission::Record
        } else {
            let left = window_length.saturating_sub(now.duration_since(window.started));
            Admission::Coalesce {
                retry_after_seconds: left.as_secs_f64().ceil().max(1.0) as u64,
            }
        }
    }

    /// Counts `event` into its summary entry instead of auditing it now.
    pub fn coalesce(&self, event: &AuditEvent) {
        let key = SummaryKey {
            tenant_id: event.tenant_id.clone(),
            actor: event.actor.clone(),
            action: event.action,
        };
        let mut state = self.state();
        let summary = state.summaries.entry(key).or_insert_with(|| {
            tracing::warn!(
                action = event.action,
                "failures over their budget: counted into one audit entry per window"
            );
            Summary {
                first: Instant::now(),
                count: 0,
                outcome: event.outcome,
            }
        });
        summary.count += 1;
    }

    /// The summary entries whose window has closed (every one when `all`), taken out of
    /// the limiter; expired budgets are forgotten at the same time.
    pub fn due_summaries(&self, all: bool) -> Vec<AuditEvent> {
        let now = Instant::now();
        let window = self.limits.window;
        let mut state = self.state();
        state
            .windows
            .retain(|_, budget| now.duration_since(budget.started) < window);
        let crowded = state.summaries.len() >= MAX_TRACKED;
        let due: Vec<SummaryKey> = state
            .summaries
            .iter()
            .filter(|(_, summary)| all || crowded || now.duration_since(summary.first) >= window)
            .map(|(key, _)| key.clone())
            .collect();
        due.into_iter()
            .filter_map(|key| {
                let summary = state.summaries.remove(&key)?;
                Some(AuditEvent {
                    resource: format!(
                        "{} more like this within {} s, not logged one by one",
                        summary.count,
                        window.as_secs().max(1)
                    ),
                    tenant_id: key.tenant_id,
                    actor: key.actor,
                    action: key.action,
                    outcome: summary.outcome,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Outcome;

    fn rejected() -> AuditEvent {
        AuditEvent {
            tenant_id: None,
            actor: "anonymous".into(),
            action: "token.rejected",
            resource: "/v1/tenants/x".into(),
            outcome: Outcome::Denied,
        }
    }

    #[test]
    fn failures_beyond_the_burst_are_counted_into_one_summary_per_window() {
        let limiter = FailureLimiter::new(FailureLimits {
            burst: 3,
            window: Duration::from_millis(300),
        });
        let source = Budget::source(Some("192.0.2.7".parse().unwrap()));
        let other = Budget::source(Some("192.0.2.8".parse().unwrap()));
        let mut recorded = 0;
        for _ in 0..20 {
            match limiter.admit(&source) {
                Admission::Record => recorded += 1,
                Admission::Coalesce {
                    retry_after_seconds,
                } => {
                    assert_eq!(retry_after_seconds, 1);
                    limiter.coalesce(&rejected());
                }
            }
        }
        assert_eq!(recorded, 3);
        // Another source has its own budget.
        assert_eq!(limiter.admit(&other), Admission::Record);
        assert!(limiter.due_summaries(false).is_empty(), "window still open");
        std::thread::sleep(Duration::from_millis(350));
        let summaries = limiter.due_summaries(false);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].action, "token.rejected");
        assert!(
            summaries[0].resource.starts_with("17 more"),
            "{}",
            summaries[0].resource
        );
        // A new window starts with a fresh budget.
        assert_eq!(limiter.admit(&source), Admission::Record);
    }

    #[test]
    fn an_ipv6_client_is_one_source_across_its_slash_64() {
        let one = Budget::source(Some("2001:db8:1:2::1".parse().unwrap()));
        let two = Budget::source(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        let elsewhere = Budget::source(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(one, two);
        assert_ne!(one, elsewhere);
        let mapped = Budget::source(Some("::ffff:192.0.2.7".parse().unwrap()));
        assert_eq!(mapped, Budget::source(Some("192.0.2.7".parse().unwrap())));
    }
}

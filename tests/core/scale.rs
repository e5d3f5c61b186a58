//! Issue 12 §5: thousands of tenants. Open indexes are bounded by a byte budget (least
//! recently used evicted, premium pinned, idle ones dropped), and nothing opens a tenant
//! before it is used.

use std::time::Duration;

use bulkhead::appliance::Appliance;
use bulkhead::auth::{OperatorReason, TenantScope};
use bulkhead::index::SearchMode;
use bulkhead::store::{Store, Tier};

use crate::support::{config_for, ingest, sample_contract};

/// A data directory with `tiers.len()` tenants holding the same contract (so the same
/// weight), created by an appliance that is then closed.
fn tenants_with_a_contract(tiers: &[Tier]) -> (tempfile::TempDir, Vec<TenantScope>) {
    let dir = tempfile::tempdir().unwrap();
    Store::init(dir.path()).unwrap();
    bulkhead::auth::tokens::Signer::init(dir.path()).unwrap();
    let appliance = Appliance::open(config_for(dir.path())).unwrap();
    let (name, text) = sample_contract("SoupmanInc");
    let scopes = tiers
        .iter()
        .enumerate()
        .map(|(index, tier)| {
            let record = appliance
                .create_tenant(&format!("Tenant {index}"), *tier)
                .unwrap();
            let scope = appliance
                .operator_scope(&record.tenant_id, OperatorReason::CommandLine)
                .unwrap();
            ingest(&appliance, &scope, &[(&name, &text)]);
            scope
        })
        .collect();
    (dir, scopes)
}

fn search(appliance: &Appliance, scope: &TenantScope) {
    let results = appliance
        .search(scope, "franchise guarantee", 3, SearchMode::Hybrid)
        .unwrap();
    assert!(
        !results.is_empty(),
        "an evicted tenant reopens from its files"
    );
}

/// What one of these tenants weighs open, measured by a fresh appliance.
fn one_tenant_bytes(dir: &std::path::Path, scope: &TenantScope) -> u64 {
    let appliance = Appliance::open(config_for(dir)).unwrap();
    search(&appliance, scope);
    let stats = appliance.open_tenant_stats();
    assert_eq!(stats.open_tenants, 1);
    assert!(stats.open_bytes > 0, "an open tenant weighs something");
    stats.open_bytes
}

#[test]
fn issue_12_open_tenants_stay_under_the_byte_budget_evicting_the_least_recently_used() {
    let (dir, scopes) = tenants_with_a_contract(&[Tier::Standard; 5]);
    let one = one_tenant_bytes(dir.path(), &scopes[0]);
    let mut config = config_for(dir.path());
    // Room for two and a half of them.
    config.open_index_budget_bytes = one * 5 / 2;
    let appliance = Appliance::open(config).unwrap();
    assert_eq!(appliance.open_tenant_stats().open_tenants, 0);
    let open = |appliance: &Appliance| -> Vec<bool> {
        scopes
            .iter()
            .map(|scope| appliance.is_tenant_open(scope.tenant_id()))
            .collect()
    };
    let within_budget = |appliance: &Appliance| {
        let stats = appliance.open_tenant_stats();
        assert!(
            stats.open_bytes <= stats.budget_bytes,
            "{} open bytes over the budget of {}",
            stats.open_bytes,
            stats.budget_bytes
        );
    };
    search(&appliance, &scopes[0]);
    search(&appliance, &scopes[1]);
    within_budget(&appliance);
    // Tenant 0 used again: tenant 1 is now the least recently used, and goes for tenant 2
    // (first in, first out would have dropped tenant 0).
    search(&appliance, &scopes[0]);
    search(&appliance, &scopes[2]);
    within_budget(&appliance);
    assert_eq!(open(&appliance), [true, false, true, false, false]);
    search(&appliance, &scopes[3]);
    search(&appliance, &scopes[4]);
    within_budget(&appliance);
    assert_eq!(open(&appliance), [false, false, false, true, true]);
    let stats = appliance.open_tenant_stats();
    assert_eq!(
        (stats.open_tenants, stats.evicted_for_budget),
        (2, 3),
        "{stats:?}"
    );
    assert_eq!(stats.evicted_idle, 0);
}

#[test]
fn issue_12_a_premium_tenant_is_never_evicted() {
    let (dir, scopes) = tenants_with_a_contract(&[Tier::Premium, Tier::Standard, Tier::Standard]);
    let mut config = config_for(dir.path());
    // Not even room for one: every standard tenant goes as soon as it is not in use.
    config.open_index_budget_bytes = 1;
    config.open_index_idle = Duration::from_millis(1);
    let appliance = Appliance::open(config).unwrap();
    for scope in &scopes {
        search(&appliance, scope);
    }
    std::thread::sleep(Duration::from_millis(20));
    appliance.evict_idle_tenants();
    let stats = appliance.open_tenant_stats();
    assert!(appliance.is_tenant_open(scopes[0].tenant_id()));
    assert!(!appliance.is_tenant_open(scopes[1].tenant_id()));
    assert!(!appliance.is_tenant_open(scopes[2].tenant_id()));
    assert_eq!(
        (stats.open_tenants, stats.pinned_tenants),
        (1, 1),
        "{stats:?}"
    );
    // Tenant 1 went for tenant 2's open; tenant 2, in use then, at the next check.
    assert_eq!(
        stats.evicted_for_budget + stats.evicted_idle,
        2,
        "{stats:?}"
    );

    // Demoted to standard, it is evictable like any other.
    appliance.set_tenant_pinned(scopes[0].tenant_id(), Tier::Standard);
    assert!(!appliance.is_tenant_open(scopes[0].tenant_id()));
    search(&appliance, &scopes[0]);
}

#[test]
fn issue_12_a_tenant_idle_longer_than_the_idle_time_leaves_memory() {
    let (dir, scopes) = tenants_with_a_contract(&[Tier::Standard, Tier::Standard]);
    let mut config = config_for(dir.path());
    config.open_index_idle = Duration::from_millis(300);
    let appliance = Appliance::open(config).unwrap();
    search(&appliance, &scopes[0]);
    std::thread::sleep(Duration::from_millis(400));
    search(&appliance, &scopes[1]);
    assert_eq!(appliance.evict_idle_tenants(), 1);
    assert!(!appliance.is_tenant_open(scopes[0].tenant_id()));
    assert!(appliance.is_tenant_open(scopes[1].tenant_id()));
    let stats = appliance.open_tenant_stats();
    assert_eq!((stats.evicted_idle, stats.evicted_for_budget), (1, 0));
    // It reopens from its files when used again.
    search(&appliance, &scopes[0]);
}

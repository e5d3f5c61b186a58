//! Issue 12 §5: thousands of tenants. A server with many tenants starts without opening
//! any of them, `/metrics` shows what the open ones weigh against the byte budget, and a
//! platform admin pages through every tenant.

use std::collections::HashSet;
use std::time::Instant;

use bulkhead::appliance::Appliance;
use bulkhead::config::Config;
use bulkhead::store::Tier;

use crate::harness::{
    Server, assert_error, cli, client, metric, models_dir, sample, send, send_text,
};

/// A server on a data directory already holding `count` tenants (created in one batch,
/// through the appliance as an operator would provision them).
fn server_with_tenants(count: usize, extra: &[&str]) -> (Server, Vec<String>) {
    let data = tempfile::tempdir().unwrap();
    cli(data.path(), &["init"]);
    let appliance = Appliance::open(Config::new(data.path().to_path_buf(), models_dir())).unwrap();
    let batch: Vec<(String, Tier)> = (0..count)
        .map(|index| (format!("Scale tenant {index}"), Tier::Standard))
        .collect();
    let created = appliance.create_tenants(&batch).unwrap();
    drop(appliance);
    let ids = created
        .iter()
        .map(|tenant| tenant.tenant_id.to_string())
        .collect();
    (Server::start_on(data, extra), ids)
}

async fn metrics(server: &Server) -> String {
    send_text(client().get(server.url("/metrics"))).await
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_server_with_many_tenants_starts_opening_none_until_one_is_used() {
    let started = Instant::now();
    let (server, tenants) = server_with_tenants(2_000, &["--open-index-budget-bytes", "1"]);
    eprintln!(
        "2,000 tenants created and the server listening in {:?}",
        started.elapsed()
    );
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "bulkhead_open_tenants"), 0, "{text}");
    assert_eq!(metric(&text, "bulkhead_open_tenant_bytes"), 0);
    assert_eq!(metric(&text, "bulkhead_open_tenant_budget_bytes"), 1);

    // Using two tenants opens them; with no room in the budget the first, no longer in
    // use, is evicted when the second opens.
    let (name, bytes) = sample("SoupmanInc");
    for tenant in &tenants[..2] {
        let editor = server.caller(tenant, "ed", &["editor", "reader"]);
        let (status, body) = editor.upload(&name, bytes.clone(), true).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = editor
            .post(
                "/search",
                serde_json::json!({"query": "franchise guarantee"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let text = metrics(&server).await;
    assert!(metric(&text, "bulkhead_open_tenants") <= 1, "{text}");
    assert!(
        text.lines().any(|line| line
            .starts_with("bulkhead_tenant_evictions_total{reason=\"budget\"} ")
            && !line.ends_with(" 0")),
        "{text}"
    );
    assert!(text.contains("bulkhead_tenant_evictions_total{reason=\"idle\"} "));
    assert!(text.contains("# TYPE bulkhead_open_tenant_bytes gauge"));
    assert!(
        !tenants.iter().any(|tenant| text.contains(tenant.as_str())),
        "metrics carry no tenant ids"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_pages_of_tenants_hold_every_tenant_exactly_once() {
    let (server, tenants) = server_with_tenants(25, &[]);
    let admin = server.platform_token();
    let get = |query: String| {
        send(
            client()
                .get(server.url(&format!("/v1/tenants{query}")))
                .bearer_auth(&admin),
        )
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            None => "?limit=7".to_owned(),
            Some(cursor) => format!("?limit=7&cursor={cursor}"),
        };
        let (status, body) = get(query).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let page = body["tenants"].as_array().unwrap();
        assert!(page.len() <= 7);
        for tenant in page {
            let fields: HashSet<&str> = tenant
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                fields,
                HashSet::from(["tenant_id", "name", "tier", "created_at"])
            );
            seen.push(tenant["tenant_id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the pages never end");
    }
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), tenants.len(), "no tenant twice");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        tenants.iter().collect::<HashSet<_>>()
    );
    // Without a limit: the first 100, here every tenant, and no next page.
    let (status, body) = get(String::new()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenants"].as_array().unwrap().len(), 25);
    assert!(body["next_cursor"].is_null(), "{body}");

    for bad in [
        "?cursor=zzz",
        "?cursor=12_t_nothex",
        "?cursor=-1_t_00000000000000000000",
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
    ] {
        let (status, body) = get(bad.to_owned()).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    // A tenant's own admin does not list the tenants.
    let tenant_admin = server.token(&tenants[0], "root", &["admin"]);
    let (status, _) = send(
        client()
            .get(server.url("/v1/tenants"))
            .bearer_auth(&tenant_admin),
    )
    .await;
    assert_eq!(status, 403);
}

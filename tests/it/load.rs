//! Load shedding: past `max_in_flight` requests across connections, a call
//! is refused at once with RESOURCE_EXHAUSTED (never queued, never another
//! code), and the server serves normally once the burst is over.

use crate::common::*;
use spoc_engine::api::pb;
use spoc_engine::server::ServeOptions;
use tonic::Code;

/// Bursts of large concurrent batches against a server that admits one
/// request at a time: some are shed with RESOURCE_EXHAUSTED, the rest
/// succeed, nothing else happens; afterwards every call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_global_limit_are_shed() {
    let server = TestServer::start_with(ServeOptions {
        max_in_flight: 1,
        ..Default::default()
    })
    .await;
    let mut channels = Vec::new();
    while channels.len() < 4 {
        channels.push(server.channel().await);
    }
    let mut catalog = pb::catalog_service_client::CatalogServiceClient::new(channels[0].clone());
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            items: vec![],
            skills: vec![skill("a", &[])],
            modules: vec![],
        })
        .await
        .unwrap();
    pb::learner_service_client::LearnerServiceClient::new(channels[0].clone())
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner("alice", "acme")),
        })
        .await
        .unwrap();

    let mut shed = None;
    let mut served = 0;
    for round in 0..10 {
        let calls: Vec<_> = (0..48)
            .map(|k| {
                let mut client = pb::mastery_service_client::MasteryServiceClient::new(
                    channels[k % channels.len()].clone(),
                );
                let attempts = (0..500)
                    .map(|i| {
                        attempt(
                            &format!("r{round}-k{k}-{i}"),
                            "alice",
                            &["a"],
                            i % 2 == 0,
                            1_700_000_000 + i,
                        )
                    })
                    .collect();
                tokio::spawn(async move {
                    client
                        .record_attempts(pb::RecordAttemptsRequest { attempts })
                        .await
                })
            })
            .collect();
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => served += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    shed = Some(status);
                }
            }
        }
        if shed.is_some() && served > 0 {
            break;
        }
    }
    let shed = shed.expect("no request was shed with one permit and 48 concurrent calls");
    assert!(shed.message().contains("overloaded"), "{}", shed.message());
    assert!(served > 0);

    // Once the burst is over, calls one at a time all succeed.
    let mut client = pb::mastery_service_client::MasteryServiceClient::new(channels[0].clone());
    for i in 0..20 {
        client
            .record_attempts(pb::RecordAttemptsRequest {
                attempts: vec![attempt(
                    &format!("calm-{i}"),
                    "alice",
                    &["a"],
                    true,
                    1_700_100_000 + i,
                )],
            })
            .await
            .expect("served after the burst");
    }
    server.stop().await;
}

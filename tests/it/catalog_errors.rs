//! Catalog refusals name the request's field by position (`skills[1]`,
//! `skill`), in the message and in the google.rpc.BadRequest detail, never
//! by skill id, and leave the stored catalog unchanged.

use crate::common::*;
use spoc_engine::api::pb;

/// Checks the code, the whole message and the BadRequest field.
fn assert_refused(status: &tonic::Status, field: &str, message: &str) {
    assert_invalid_field(status, field);
    assert_eq!(status.message(), message);
}

/// An unknown referenced id: NOT_FOUND, the whole message, the field.
fn assert_unknown(status: &tonic::Status, field: &str, message: &str) {
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_field_named(status, field);
    assert_eq!(status.message(), message);
}

#[tokio::test]
async fn graph_errors_name_the_request_position() {
    let server = TestServer::start().await;
    let mut catalog = server.catalog().await;
    // v1 requires v3, which requires v2.
    catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("v2", &[]), skill("v3", &["v2"]), skill("v1", &["v3"])],
            modules: vec![module("m", &["v1"], pb::ModuleFormat::Video, 5)],
            items: vec![],
        })
        .await
        .unwrap();
    let before = catalog_snapshot(&server).await;

    // An unknown prerequisite: the entry's position, not its id.
    let err = catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("ok1", &[]), skill("d", &["zz"])],
            modules: vec![],
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_unknown(
        &err,
        "skills[1].prerequisite_ids[0]",
        "skills[1].prerequisite_ids[0]: skill 'zz' not found",
    );
    assert_eq!(catalog_snapshot(&server).await, before);

    // Its position in the list as sent, though the server sorts the list.
    let err = catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("d", &["zz", "v1", "zz"])],
            modules: vec![module("m2", &["v2", "nope"], pb::ModuleFormat::Video, 5)],
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert_field_named(&err, "skills[0].prerequisite_ids[0]");

    // A cycle through stored skills: the request entry that closes it is
    // named, and the message shows the whole cycle.
    let err = catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("v2", &["v1"])],
            modules: vec![],
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_refused(
        &err,
        "skills[0].prerequisite_ids[0]",
        "invalid skills[0].prerequisite_ids[0]: prerequisite cycle: v1 -> v3 -> v2 -> v1",
    );
    assert_eq!(catalog_snapshot(&server).await, before);

    // A single upsert names `skill`, whatever characters the id holds.
    let err = catalog
        .upsert_skill(pb::UpsertSkillRequest {
            skill: Some(skill("a]b", &["zz"])),
        })
        .await
        .unwrap_err();
    assert_unknown(
        &err,
        "skill.prerequisite_ids[0]",
        "skill.prerequisite_ids[0]: skill 'zz' not found",
    );
    assert_eq!(catalog_snapshot(&server).await, before);

    // Module skills too are named by their position as sent.
    let err = catalog
        .upsert_module(pb::UpsertModuleRequest {
            module: Some(module(
                "m3",
                &["v3", "nope", "v1"],
                pb::ModuleFormat::Video,
                5,
            )),
        })
        .await
        .unwrap_err();
    assert_unknown(
        &err,
        "module.skill_ids[1]",
        "module.skill_ids[1]: skill 'nope' not found",
    );
    assert_eq!(catalog_snapshot(&server).await, before);

    // Lists are still stored sorted and without repeats.
    let stored = catalog
        .upsert_skill(pb::UpsertSkillRequest {
            skill: Some(skill("a]b", &["v3", "v1", "v3"])),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored, skill("a]b", &["v1", "v3"]));
    server.stop().await;
}

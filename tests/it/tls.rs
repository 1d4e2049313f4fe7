//! TLS: the server speaks rustls with a certificate it is given, in process
//! (`server::serve_with`) and as `spoc serve --tls-cert --tls-key`; clients
//! trust a self-signed certificate generated here with rcgen.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;
use spoc_engine::api::pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A self-signed certificate for `localhost` and its key, in PEM.
fn self_signed() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("generate certificate");
    (certified.cert.pem(), certified.key_pair.serialize_pem())
}

/// A [`self_signed`] certificate and its key written to `cert.pem` and
/// `key.pem` in a fresh folder: the folder, the certificate, the paths.
fn cert_files() -> (tempfile::TempDir, String, PathBuf, PathBuf) {
    let (cert, key) = self_signed();
    let temp = tempfile::tempdir().unwrap();
    let cert_path = temp.path().join("cert.pem");
    let key_path = temp.path().join("key.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    (temp, cert, cert_path, key_path)
}

/// A TLS channel to 127.0.0.1:`port` trusting `ca_pem` for `localhost`,
/// once the server accepts.
async fn tls_channel(port: u16, ca_pem: &str) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    let endpoint = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .expect("tls config");
    eventually(&format!("a TLS server on port {port}"), async || {
        endpoint.connect().await.ok()
    })
    .await
}

/// A health check and a keyed call over TLS; plain text is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_tls_with_a_self_signed_certificate() {
    let (cert, key) = self_signed();
    // The handshake time is shortened so the silent connection below is
    // closed in a second instead of the default ten.
    let handshake = std::time::Duration::from_secs(1);
    let server = TestServer::start_with(spoc_engine::server::ServeOptions {
        tls: Some(Identity::from_pem(&cert, &key)),
        tls_handshake_timeout: handshake,
        ..Default::default()
    })
    .await;
    let (port, admin_key) = (server.addr.port(), server.admin_key.clone());

    let channel = tls_channel(port, &cert).await;
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health over TLS")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    let mut mastery =
        pb::mastery_service_client::MasteryServiceClient::new(authed(channel, Some(&admin_key)));
    let model = mastery
        .get_model(pb::GetModelRequest {})
        .await
        .expect("keyed call over TLS")
        .into_inner();
    assert_eq!(model.model_id, "defaults");

    // Plain HTTP/2 to the TLS port gets no answer.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        let refused =
            pb::mastery_service_client::MasteryServiceClient::new(authed(plain, Some(&admin_key)))
                .get_model(pb::GetModelRequest {})
                .await;
        assert!(refused.is_err());
    }
    // A client that does not trust the certificate is refused.
    let (other, _) = self_signed();
    let untrusted = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(other))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await;
    assert!(
        untrusted.is_err(),
        "a certificate nobody trusts was accepted"
    );

    // A connection that never starts its handshake is closed once the
    // handshake time is up, instead of holding its place for ever.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let wait = handshake + std::time::Duration::from_secs(10);
    let mut byte = [0u8; 1];
    let closed =
        tokio::time::timeout(wait, tokio::io::AsyncReadExt::read(&mut silent, &mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection was still open after {wait:?}: {closed:?}"
    );

    server.stop().await;
}

/// `spoc serve --tls-cert --tls-key` serves over TLS, with the first admin
/// key it wrote to DATA_DIR/admin-key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoc_serve_takes_tls_flags_and_writes_the_first_admin_key() {
    let (temp, cert, cert_path, key_path) = cert_files();
    let data = temp.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _spoc = Spoc::start(
        &data,
        ([127, 0, 0, 1], port).into(),
        "127.0.0.1:0",
        &[
            "--tls-cert".as_ref(),
            cert_path.as_os_str(),
            "--tls-key".as_ref(),
            key_path.as_os_str(),
        ],
    );

    let channel = tls_channel(port, &cert).await;
    let admin_key = admin_key_in(&data);
    let keys = pb::admin_service_client::AdminServiceClient::new(authed(channel, Some(&admin_key)))
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .expect("admin call over TLS")
        .into_inner();
    assert_eq!(keys.api_keys.len(), 1);
    assert_eq!(keys.api_keys[0].role, pb::ApiKeyRole::Admin as i32);
}

/// With TLS asked for, the plain-HTTP xAPI listener may not face a
/// network: `spoc serve` refuses a non-loopback `--http-listen`.
#[test]
fn tls_refuses_a_plain_xapi_listener_off_loopback() {
    let (temp, _, cert_path, key_path) = cert_files();
    let out = Command::new(env!("CARGO_BIN_EXE_spoc"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "0.0.0.0:0",
        ])
        .arg("--data-dir")
        .arg(temp.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .output()
        .expect("run spoc serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--http-listen") && err.contains("loopback"),
        "{err}"
    );
}

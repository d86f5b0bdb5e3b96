//! Several public hub instances sharing one real PostgreSQL database
//! (`public.database`): a token made through one works on the others, a revocation
//! anywhere stops new connections everywhere and closes open ones within the reload
//! bound, a pairing moves between instances, and losing the database refuses new
//! connections with 503 while open ones carry on, until it is back.

use semantest_hub::StartError;
use semantest_hub::config::PublicConfig;
use semantest_hub::security::{challenge_proof, token_hash};
use serde_json::{Value, json};

use crate::util::cluster::{
    DATABASE, NAME, ORIGIN, PASSWORD, PostgresServer, Shared, USER, connect, data_dir, get, health,
    health_becomes, owner, post, public_settings,
};
use crate::util::{WAIT, free_port, test_config};

/// One public instance on its own port and data directory, sharing `pg`.
async fn instance(pg: &PostgresServer) -> crate::util::TestHub {
    crate::util::cluster::instance(Shared::database(pg)).await
}

/// The public settings of an instance whose database is at `url`.
fn public(url: &str) -> PublicConfig {
    PublicConfig {
        database: Some(url.into()),
        ..public_settings(Shared::default())
    }
}

#[tokio::test]
async fn tokens_are_shared_and_a_revocation_anywhere_holds_everywhere() {
    let pg = PostgresServer::start().await;
    let (a, b, c) = (
        instance(&pg).await,
        instance(&pg).await,
        instance(&pg).await,
    );
    assert!(a.port != b.port && b.port != c.port && a.port != c.port);

    let mut owner_a = owner(&a).await;
    let created = owner_a
        .ok(
            "client.create",
            json!({"name": "reader", "scopes": ["events"]}),
        )
        .await;
    let (id, token) = (
        created["client"]["id"].as_str().unwrap().to_string(),
        created["token"].as_str().unwrap().to_string(),
    );

    // Made through A, it works on B at once, and C lists it.
    let mut on_b = connect(&b, &token, None)
        .await
        .expect("the token works on B");
    on_b.ok("hub.hello", json!({})).await;
    let connections = owner(&b).await.ok("hub.connections", json!({})).await;
    assert!(
        connections["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|connection| connection["client_id"] == id.as_str()),
        "{connections}"
    );
    let listed = owner(&c).await.ok("client.list", json!({})).await;
    assert!(
        listed["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|client| client["id"] == id.as_str()),
        "{listed}"
    );

    // Revoked through C: refused for new connections on A and B right away (each new
    // connection is checked against the database), and B closes its open one with
    // 1008 within the reload bound (1 s).
    let revoked = owner(&c)
        .await
        .ok("client.revoke", json!({"client_id": id}))
        .await;
    assert_eq!(revoked["revoked"], true);
    assert_eq!(connect(&a, &token, None).await.err(), Some(401));
    assert_eq!(connect(&b, &token, None).await.err(), Some(401));
    let close = on_b.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);

    // Revoking again anywhere: not found.
    let again = owner_a.err("client.revoke", json!({"client_id": id})).await;
    assert_eq!(again["data"]["kind"], "CLIENT_NOT_FOUND", "{again}");
}

#[tokio::test]
async fn a_pairing_requested_on_a_is_approved_on_b_and_claimed_on_c() {
    let pg = PostgresServer::start().await;
    let (a, b, c) = (
        instance(&pg).await,
        instance(&pg).await,
        instance(&pg).await,
    );

    let (status, requested) = post(&a, "/pair", json!({"name": "My extension"})).await;
    assert_eq!(status, 201, "{requested}");
    let request_id = requested["request_id"].as_str().unwrap().to_string();
    let claim = json!({"claim": requested["claim"]});

    // Pending everywhere.
    let (status, pending) = post(&c, &format!("/pair/{request_id}"), claim.clone()).await;
    assert_eq!((status, pending["status"].as_str()), (202, Some("pending")));

    let mut owner_b = owner(&b).await;
    let listed = owner_b.ok("pairing.list", json!({})).await;
    let seen = &listed["requests"][0];
    assert_eq!(seen["id"], request_id.as_str(), "{listed}");
    assert_eq!(seen["code"], requested["code"]);
    let approved = owner_b
        .ok(
            "pairing.approve",
            json!({"request_id": request_id, "scopes": ["events"]}),
        )
        .await;
    let client_id = approved["client"]["id"].as_str().unwrap().to_string();
    // Decided: a second decision, on another instance, is refused.
    let twice = owner(&a)
        .await
        .err("pairing.deny", json!({"request_id": request_id}))
        .await;
    assert_eq!(twice["data"]["kind"], "PAIRING_NOT_FOUND", "{twice}");

    // Between approval and claim the database holds no usable token: the approved
    // token's stored hash is of a value nobody was given.
    let db = sql(&pg).await;
    let before = stored_hash(&db, &client_id).await;

    // Claimed through C, exactly once across the instances.
    let (status, claimed) = post(&c, &format!("/pair/{request_id}"), claim.clone()).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["client_id"], client_id.as_str());
    let token = claimed["token"].as_str().unwrap().to_string();
    let (status, _) = post(&b, &format!("/pair/{request_id}"), claim.clone()).await;
    assert_eq!(status, 404, "a second claim finds nothing");
    let after = stored_hash(&db, &client_id).await;
    assert_eq!(
        after,
        token_hash(&token),
        "the claim gave the token its value"
    );
    assert_ne!(
        before, after,
        "the value handed over was never stored before the claim"
    );
    let left: i64 = db
        .query_one("SELECT COUNT(*) FROM pairing_requests", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "a claimed request is deleted");

    // The signature proof for the new token is right at once on another instance.
    let response = reqwest::Client::new()
        .get(a.http(&format!(
            "/semantest-signature?challenge=n1&client={client_id}"
        )))
        .header("host", NAME)
        .send()
        .await
        .unwrap();
    let signature: Value = response.json().await.unwrap();
    assert_eq!(
        signature["challenge"]["proof"],
        challenge_proof(
            &token_hash(&token),
            "n1",
            &client_id,
            &format!("{NAME}:443")
        ),
        "{signature}"
    );

    // The token works from its Origin on every instance, and only from there.
    for hub in [&a, &b, &c] {
        connect(hub, &token, Some(ORIGIN))
            .await
            .expect("the paired token connects from its origin");
        assert_eq!(connect(hub, &token, None).await.err(), Some(401));
    }
}

/// A direct connection to the test database, to look at what the hub stored.
async fn sql(pg: &PostgresServer) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(pg.port)
        .user(USER)
        .password(PASSWORD)
        .dbname(DATABASE)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The SHA-256 stored for token `id`.
async fn stored_hash(db: &tokio_postgres::Client, id: &str) -> [u8; 32] {
    let hash: Vec<u8> = db
        .query_one("SELECT hash FROM client_tokens WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    hash.try_into().unwrap()
}

#[tokio::test]
async fn pending_limits_count_every_instance() {
    let pg = PostgresServer::start().await;
    let (a, b) = (instance(&pg).await, instance(&pg).await);
    // Two per address (the default), from the same address through two instances.
    assert_eq!(post(&a, "/pair", json!({"name": "one"})).await.0, 201);
    assert_eq!(post(&b, "/pair", json!({"name": "two"})).await.0, 201);
    let (status, refused) = post(&a, "/pair", json!({"name": "three"})).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["kind"], "LIMIT_REACHED");
}

#[tokio::test]
async fn losing_the_database_refuses_new_connections_and_keeps_open_ones() {
    let pg = PostgresServer::start().await;
    let a = instance(&pg).await;
    let (status, body) = health(&a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(
        body["database"],
        json!({"kind": "postgres", "state": "reachable"})
    );

    let mut owner_a = owner(&a).await;
    let created = owner_a
        .ok(
            "client.create",
            json!({"name": "worker", "scopes": ["events"]}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_string();
    let mut open = connect(&a, &token, None).await.expect("connects");

    pg.stop().await;
    let body = health_becomes(&a, 503).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"]["state"], "unreachable");
    assert_eq!(connect(&a, &token, None).await.err(), Some(503));
    let owner_token = a.token.clone();
    assert_eq!(connect(&a, &owner_token, None).await.err(), Some(503));
    // Open connections carry on.
    for ws in [&mut open, &mut owner_a] {
        let hello = ws.ok("hub.hello", json!({})).await;
        assert!(hello["protocol"].is_number(), "{hello}");
    }
    // Managing access needs the database: a clear error, the connection stays.
    let failed = owner_a
        .err(
            "client.create",
            json!({"name": "late", "scopes": ["events"]}),
        )
        .await;
    assert_eq!(failed["data"]["kind"], "INTERNAL", "{failed}");
    open.ok("hub.hello", json!({})).await;

    pg.start_again().await;
    let body = health_becomes(&a, 200).await;
    assert_eq!(body["database"]["state"], "reachable");
    connect(&a, &token, None)
        .await
        .expect("new connections are served again");
    owner_a
        .ok(
            "client.create",
            json!({"name": "later", "scopes": ["events"]}),
        )
        .await;
}

#[tokio::test]
async fn an_unreachable_database_stops_the_start_with_a_clear_error() {
    let dir = data_dir();
    // Nobody listens there: a port the kernel does not hand out by itself.
    let free = free_port();
    let mut config = test_config(dir.path());
    let url = format!("postgres://semantest@127.0.0.1:{free}/semantest");
    config.config.public = public(&url);
    let err = match tokio::time::timeout(WAIT, semantest_hub::start(config))
        .await
        .expect("gives up within the wait")
    {
        Ok(_) => panic!("started without its database"),
        Err(err) => err,
    };
    assert!(matches!(err, StartError::Database { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("semantest@127.0.0.1:{free}/semantest"))
            && message.contains("public.database"),
        "{message}"
    );
}

#[test]
fn a_password_in_the_url_is_refused_naming_the_variable() {
    let settings = PublicConfig {
        database: Some("postgres://semantest:hunter2@db.example.com/semantest".into()),
        ..public("postgres://semantest@db.example.com/semantest")
    };
    let err = settings.validate().unwrap_err().to_string();
    assert!(
        err.contains("SEMANTEST_HUB_DATABASE_PASSWORD") && !err.contains("hunter2"),
        "{err}"
    );
    for bad in ["mysql://db/x", "postgres://", "postgres://db.example.com/x"] {
        let settings = PublicConfig {
            database: Some(bad.into()),
            ..public("postgres://semantest@db.example.com/semantest")
        };
        assert!(settings.validate().is_err(), "{bad}");
    }
}

/// Before authentication a client picks the Origin and the `?client=` of a challenge;
/// each one the hub's copy of the tokens does not know used to cost a PostgreSQL query,
/// on every request. Counted in the server's own statement log (`log_statement=all`
/// logs each execution with its parameters), the database is asked once per unknown
/// value however often it is sent.
#[tokio::test]
async fn unknown_origins_and_client_ids_cost_one_query_each() {
    let pg = PostgresServer::start_with("-c log_statement=all", |_| {}).await;
    let a = instance(&pg).await;
    let stranger = "https://stranger.example";
    let unknown_id = "cl_00000000000000000000000000000000";
    let asked = |value: &str| pg.log().matches(&format!("'{value}'")).count();
    assert_eq!(asked(stranger), 0);
    let token = a.token.clone();
    for _ in 0..10 {
        assert_eq!(connect(&a, &token, Some(stranger)).await.err(), Some(403));
    }
    assert_eq!(asked(stranger), 1, "the unknown Origin was looked up once");
    let path = format!("/semantest-signature?challenge=nonce-1&client={unknown_id}");
    for _ in 0..10 {
        let status = get(&a, &path).await.0;
        assert_eq!(status, 200);
    }
    assert_eq!(
        asked(unknown_id),
        1,
        "the unknown client id was looked up once"
    );
    // Another unknown value is looked up on its own.
    let other = "https://other-stranger.example";
    assert_eq!(connect(&a, &token, Some(other)).await.err(), Some(403));
    assert_eq!(asked(other), 1);
}

/// A remembered miss never refuses a token made since: an Origin that was looked up and
/// not found, then given a token through the same instance, is served at once.
#[tokio::test]
async fn a_token_made_after_a_miss_is_served_at_once() {
    let pg = PostgresServer::start().await;
    let a = instance(&pg).await;
    let origin = "https://app.example";
    let owner_token = a.token.clone();
    assert_eq!(
        connect(&a, &owner_token, Some(origin)).await.err(),
        Some(403)
    );
    let mut owner = owner(&a).await;
    let created = owner
        .ok(
            "client.create",
            json!({"name": "app", "origin": origin, "scopes": ["events"]}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["client"]["id"].as_str().unwrap().to_string();
    let ws = connect(&a, &token, Some(origin)).await;
    assert!(ws.is_ok(), "refused with {:?}", ws.err());
    let path = format!("/semantest-signature?challenge=nonce-2&client={id}");
    let response = reqwest::Client::new()
        .get(a.http(&path))
        .header("host", NAME)
        .send()
        .await
        .unwrap();
    let signature: Value = response.json().await.unwrap();
    assert!(signature["challenge"]["proof"].is_string(), "{signature}");
}

/// A CA and a server certificate it signed for `127.0.0.1` and `localhost`, as PEM:
/// `(ca, server certificate, server key)`.
fn database_certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test database CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A PostgreSQL server with `ssl=on` and a certificate signed by a CA made here; the
/// CA's PEM is returned beside it.
async fn postgres_with_tls() -> (PostgresServer, String) {
    use std::os::unix::fs::PermissionsExt;
    let (ca, cert, key) = database_certificates();
    // Relative to the data directory, which initdb creates beside these files.
    let pg = PostgresServer::start_with(
        "-c ssl=on -c ssl_cert_file=../server.crt -c ssl_key_file=../server.key",
        |dir| {
            std::fs::write(dir.join("server.crt"), &cert).unwrap();
            let key_file = dir.join("server.key");
            std::fs::write(&key_file, &key).unwrap();
            // PostgreSQL refuses a key others can read.
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        },
    )
    .await;
    (pg, ca)
}

/// Starts a public instance on `url` (the password comes from the secret store), in
/// `dir`.
async fn start_on(
    dir: &tempfile::TempDir,
    url: &str,
) -> Result<semantest_hub::HubServer, StartError> {
    let mut config = test_config(dir.path());
    config.config.public = public(url);
    tokio::time::timeout(WAIT, semantest_hub::start(config))
        .await
        .expect("an outcome within the wait")
}

/// Whether every connection of the hub to `pg` is TLS, and how many there are.
async fn hub_connections_over_tls(pg: &PostgresServer) -> (bool, i64) {
    let db = sql(pg).await;
    let row = db
        .query_one(
            "SELECT COALESCE(bool_and(s.ssl), false), COUNT(*) FROM pg_stat_ssl s
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'semantest-hub'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The messages of `err` and of its sources, joined.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `sslmode=verify-full` with the CA, and `sslmode=require`, reach a server with TLS
/// over TLS (as the server itself reports in `pg_stat_ssl`); `verify-full` with a CA
/// that did not sign the server's certificate does not connect.
#[tokio::test]
async fn the_database_connection_uses_tls_as_sslmode_says() {
    let (pg, ca) = postgres_with_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();

    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        ca_file.display()
    );
    let first = data_dir();
    let hub = start_on(&first, &url)
        .await
        .expect("starts with verify-full");
    let (all_tls, count) = hub_connections_over_tls(&pg).await;
    assert!(all_tls && count >= 1, "{all_tls} {count}");
    hub.shutdown().await;

    let second = data_dir();
    let hub = start_on(&second, &format!("{}?sslmode=require", pg.url()))
        .await
        .expect("starts with require");
    let (all_tls, count) = hub_connections_over_tls(&pg).await;
    assert!(all_tls && count >= 1, "{all_tls} {count}");
    hub.shutdown().await;

    // A CA that did not sign the server's certificate: refused, saying why.
    let (other_ca, _, _) = database_certificates();
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        other_file.display()
    );
    let err = start_on(&data_dir(), &url)
        .await
        .err()
        .expect("an impostor is refused");
    let text = chain(&err);
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

/// `sslmode=require` against a server without TLS stops the start with an error that
/// says so, instead of falling back to plain text.
#[tokio::test]
async fn sslmode_require_refuses_a_server_without_tls() {
    let pg = PostgresServer::start().await;
    let err = start_on(&data_dir(), &format!("{}?sslmode=require", pg.url()))
        .await
        .err()
        .expect("no plain-text fallback");
    assert!(matches!(err, StartError::Database { .. }), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("TLS"), "{text}");
}

#[test]
fn verify_full_needs_its_ca_and_verify_ca_is_refused() {
    let base = "postgres://semantest@db.example.com/semantest";
    for (url, expected) in [
        (format!("{base}?sslmode=verify-full"), "sslrootcert"),
        (
            format!("{base}?sslmode=verify-ca&sslrootcert=/etc/hostname"),
            "verify-full",
        ),
        (format!("{base}?sslrootcert=/etc/hostname"), "verify-full"),
        (
            format!("{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            "/nonexistent/ca.pem",
        ),
    ] {
        let settings = PublicConfig {
            database: Some(url.clone()),
            ..public(base)
        };
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains(expected), "{url}: {err}");
    }
}

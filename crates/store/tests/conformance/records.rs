//! Resources, users and initial access tokens.

use custos_store::{
    DetailTypeRecord, InitialAccessTokenRecord, ResourceRecord, StoreError, UserRecord,
};

use crate::harness::TestDb;

async fn resources(db: TestDb) {
    let s = db.store;
    assert_eq!(s.get_resource("https://api.example/").await.unwrap(), None);
    assert_eq!(s.list_resources().await.unwrap(), vec![]);
    let api = ResourceRecord {
        uri: "https://api.example/".into(),
        scopes: vec!["read".into(), "write".into(), "ünïcode \"quoted\"".into()],
        tags: vec!["sensitive".into(), "pii".into()],
        created_at: 20,
    };
    let bare = ResourceRecord {
        uri: "urn:example:bare".into(),
        scopes: vec![],
        tags: vec![],
        created_at: 10,
    };
    let api_types = vec![
        detail_type("account_information", "https://api.example/"),
        detail_type("payment_initiation", "https://api.example/"),
    ];
    s.insert_resource(&api, &api_types).await.unwrap();
    s.insert_resource(&bare, &[]).await.unwrap();
    assert_eq!(s.get_resource(&api.uri).await.unwrap(), Some(api.clone()));
    assert_eq!(s.get_resource(&bare.uri).await.unwrap(), Some(bare.clone()));
    assert_eq!(s.list_resources().await.unwrap(), vec![bare, api.clone()]);

    let clash = ResourceRecord {
        scopes: vec!["admin".into()],
        ..api.clone()
    };
    assert!(matches!(
        s.insert_resource(&clash, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_resource(&api.uri).await.unwrap(), Some(api.clone()));
    assert_eq!(s.list_detail_types().await.unwrap(), api_types);
}

fn detail_type(name: &str, resource: &str) -> DetailTypeRecord {
    DetailTypeRecord {
        type_name: name.into(),
        resource: resource.into(),
        schema_json: r#"{"type":"object","properties":{"type":{"const":"x"}}}"#.into(),
    }
}

/// A type name belongs to one resource: a second resource claiming it is a
/// conflict, and then nothing of that resource is stored.
async fn detail_type_names_are_unique(db: TestDb) {
    let s = db.store;
    let first = ResourceRecord {
        uri: "https://one.example/".into(),
        scopes: vec![],
        tags: vec![],
        created_at: 1,
    };
    let first_types = vec![detail_type("payment_initiation", "https://one.example/")];
    s.insert_resource(&first, &first_types).await.unwrap();
    let second = ResourceRecord {
        uri: "https://two.example/".into(),
        ..first.clone()
    };
    let second_types = vec![
        detail_type("account_information", "https://two.example/"),
        detail_type("payment_initiation", "https://two.example/"),
    ];
    assert!(matches!(
        s.insert_resource(&second, &second_types).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_resource(&second.uri).await.unwrap(), None);
    assert_eq!(s.list_detail_types().await.unwrap(), first_types);
}

async fn users(db: TestDb) {
    let s = db.store;
    assert_eq!(s.get_user("alice").await.unwrap(), None);
    let alice = UserRecord {
        username: "alice".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: 5,
    };
    s.insert_user(&alice).await.unwrap();
    assert_eq!(s.get_user("alice").await.unwrap(), Some(alice.clone()));
    // Usernames are compared exactly.
    assert_eq!(s.get_user("Alice").await.unwrap(), None);
    let again = UserRecord {
        password_hash: "other".into(),
        ..alice.clone()
    };
    assert!(matches!(
        s.insert_user(&again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_user("alice").await.unwrap(), Some(alice));
}

async fn initial_access_tokens(db: TestDb) {
    let s = db.store;
    let described = InitialAccessTokenRecord {
        token_hash: vec![0x11; 32],
        created_at: 100,
        expires_at: 200,
        description: Some("ci pipeline".into()),
    };
    let plain = InitialAccessTokenRecord {
        token_hash: vec![0x00, 0x22, 0x00],
        created_at: 100,
        expires_at: 300,
        description: None,
    };
    s.insert_initial_access_token(&described).await.unwrap();
    s.insert_initial_access_token(&plain).await.unwrap();
    assert_eq!(
        s.get_initial_access_token(&[0x11; 32]).await.unwrap(),
        Some(described.clone())
    );
    assert_eq!(
        s.get_initial_access_token(&[0x00, 0x22, 0x00])
            .await
            .unwrap(),
        Some(plain)
    );
    assert_eq!(s.get_initial_access_token(&[0x11; 31]).await.unwrap(), None);
    assert!(matches!(
        s.insert_initial_access_token(&described).await,
        Err(StoreError::Conflict)
    ));
}

conformance!(
    resources,
    detail_type_names_are_unique,
    users,
    initial_access_tokens
);

mod trusted_issuers {
    use custos_store::{StoreError, TrustedIssuerRecord};

    use crate::harness::TestDb;

    fn issuer(id: &str, name: &str, created_at: i64) -> TrustedIssuerRecord {
        TrustedIssuerRecord {
            id: id.into(),
            kind: "oidc".into(),
            name: name.into(),
            config_json: format!("{{\"kind\":\"oidc\",\"issuer\":\"{name}\"}}"),
            created_at,
        }
    }

    async fn trusted_issuers_round_trip(db: TestDb) {
        let s = db.store;
        assert_eq!(s.list_trusted_issuers().await.unwrap(), vec![]);
        let a = issuer("i1", "https://k8s.example", 10);
        let b = issuer("i2", "example.org", 5);
        s.insert_trusted_issuer(&a).await.unwrap();
        s.insert_trusted_issuer(&b).await.unwrap();
        assert!(matches!(
            s.insert_trusted_issuer(&issuer("i3", "https://k8s.example", 11))
                .await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            s.insert_trusted_issuer(&issuer("i1", "https://other.example", 11))
                .await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            s.list_trusted_issuers().await.unwrap(),
            vec![b.clone(), a.clone()]
        );
        assert_eq!(
            s.get_trusted_issuer("https://k8s.example").await.unwrap(),
            Some(a)
        );
        assert_eq!(s.get_trusted_issuer("https://nope").await.unwrap(), None);
        assert!(s.delete_trusted_issuer("i1").await.unwrap());
        assert!(!s.delete_trusted_issuer("i1").await.unwrap());
        assert_eq!(s.list_trusted_issuers().await.unwrap(), vec![b]);
    }

    conformance!(trusted_issuers_round_trip);
}

//! `custos admin <noun> <verb>`: the admin API from the command line.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the custos server.
    #[arg(
        long,
        env = "CUSTOS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Admin bearer token.
    #[arg(
        long,
        env = "CUSTOS_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    #[command(subcommand)]
    pub noun: Noun,
}

#[derive(Debug, Subcommand)]
pub enum Noun {
    /// People who log in at the authorization endpoint.
    Users {
        #[command(subcommand)]
        verb: UserVerb,
    },
    /// Protected resources (RFC 8707 targets).
    Resources {
        #[command(subcommand)]
        verb: ResourceVerb,
    },
    /// External issuers of workload identity: OIDC issuers (Kubernetes,
    /// CI) and SPIFFE trust domains.
    TrustedIssuers {
        #[command(subcommand)]
        verb: TrustedIssuerVerb,
    },
    /// Request-time policy records (Cedar).
    Policies {
        #[command(subcommand)]
        verb: PolicyVerb,
    },
    /// The client inventory.
    Clients {
        #[command(subcommand)]
        verb: ClientVerb,
    },
    /// The audit trail.
    Events {
        #[command(subcommand)]
        verb: EventVerb,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        verb: KeyVerb,
    },
    /// RFC 7591 initial access tokens.
    InitialAccessTokens {
        #[command(subcommand)]
        verb: TokenVerb,
    },
    /// What people remembered consenting to, per client.
    Consents {
        #[command(subcommand)]
        verb: ConsentVerb,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsentVerb {
    /// Every remembered consent, or one person's.
    List {
        #[arg(long)]
        username: Option<String>,
    },
    /// Forget a person's consents to a client (they are asked again).
    Revoke {
        username: String,
        /// (Client ids are base64url: one may start with `-`.)
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserVerb {
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, env = "CUSTOS_USER_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResourceVerb {
    Create {
        #[arg(long)]
        uri: String,
        /// A scope the resource offers (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A tag policies see, e.g. `sensitive` (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// An RFC 9396 authorization details type of this resource, as
        /// `NAME=SCHEMA_FILE` (a JSON Schema of one entry; repeatable).
        #[arg(long = "details-type", value_name = "NAME=SCHEMA_FILE")]
        detail_types: Vec<String>,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum PolicyVerb {
    /// Add a record: Cedar policy-set text from --file (or --cedar),
    /// validated against the schema.
    Create {
        #[arg(long)]
        id: String,
        /// A file holding the Cedar text.
        #[arg(long, conflicts_with = "cedar", required_unless_present = "cedar")]
        file: Option<std::path::PathBuf>,
        /// The Cedar text itself.
        #[arg(long)]
        cedar: Option<String>,
    },
    /// The set in force: default, file and API records.
    List,
    /// Delete a record added through the API.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TrustedIssuerVerb {
    /// Trust an issuer: the registration as JSON, e.g.
    /// '{"kind": "oidc", "issuer": "https://token.actions.githubusercontent.com"}'
    /// or '{"kind": "spiffe", "trust_domain": "example.org", "bundle_endpoint_url": "https://..."}'.
    Create {
        #[arg(long)]
        json: String,
    },
    List,
    /// Stop trusting an issuer (by the id `create` returned).
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientVerb {
    List,
    /// Disable the client and revoke its tokens.
    Delete {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventVerb {
    List {
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long = "type")]
        event_type: Option<String>,
        /// RFC 3339 time or epoch seconds.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyVerb {
    /// Publish a new signing key; it signs after the activation delay.
    Rotate,
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenVerb {
    Create {
        #[arg(long)]
        expires_in: Option<i64>,
        #[arg(long)]
        description: Option<String>,
    },
}

/// Runs one admin command; `Err` is the line to print.
pub async fn run(args: AdminArgs) -> Result<(), String> {
    let token = args
        .admin_token
        .ok_or("CUSTOS_ADMIN_TOKEN: required for admin commands")?;
    let (method, path, body): (Method, String, Option<Value>) = match args.noun {
        Noun::Users {
            verb: UserVerb::Create { username, password },
        } => (
            Method::POST,
            "/admin/users".into(),
            Some(json!({"username": username, "password": password})),
        ),
        Noun::Resources {
            verb:
                ResourceVerb::Create {
                    uri,
                    scopes,
                    tags,
                    detail_types,
                },
        } => {
            let mut types = Vec::with_capacity(detail_types.len());
            for spec in detail_types {
                let (name, file) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("--details-type {spec}: expected NAME=SCHEMA_FILE"))?;
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("--details-type {name}: {file}: {e}"))?;
                let schema: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("--details-type {name}: {file} is not JSON: {e}"))?;
                types.push(json!({"type": name, "schema": schema}));
            }
            (
                Method::POST,
                "/admin/resources".into(),
                Some(json!({"uri": uri, "scopes": scopes, "tags": tags,
                            "authorization_details_types": types})),
            )
        }
        Noun::Policies {
            verb: PolicyVerb::Create { id, file, cedar },
        } => {
            let cedar = match (file, cedar) {
                (Some(file), _) => std::fs::read_to_string(&file)
                    .map_err(|e| format!("--file {}: {e}", file.display()))?,
                (None, Some(cedar)) => cedar,
                (None, None) => return Err("give --file or --cedar".into()),
            };
            (
                Method::POST,
                "/admin/policies".into(),
                Some(json!({"id": id, "cedar": cedar})),
            )
        }
        Noun::Policies {
            verb: PolicyVerb::List,
        } => (Method::GET, "/admin/policies".into(), None),
        Noun::Policies {
            verb: PolicyVerb::Delete { id },
        } => (
            Method::DELETE,
            format!("/admin/policies/{}", encode(&id)),
            None,
        ),
        Noun::Resources {
            verb: ResourceVerb::List,
        } => (Method::GET, "/admin/resources".into(), None),
        Noun::TrustedIssuers {
            verb: TrustedIssuerVerb::Create { json },
        } => {
            let body: Value = serde_json::from_str(&json)
                .map_err(|e| format!("--json is not valid JSON: {e}"))?;
            (Method::POST, "/admin/trusted-issuers".into(), Some(body))
        }
        Noun::TrustedIssuers {
            verb: TrustedIssuerVerb::List,
        } => (Method::GET, "/admin/trusted-issuers".into(), None),
        Noun::TrustedIssuers {
            verb: TrustedIssuerVerb::Delete { id },
        } => (
            Method::DELETE,
            format!("/admin/trusted-issuers/{}", encode(&id)),
            None,
        ),
        Noun::Clients {
            verb: ClientVerb::List,
        } => (Method::GET, "/admin/clients".into(), None),
        Noun::Clients {
            verb: ClientVerb::Delete { client_id },
        } => (
            Method::DELETE,
            format!("/admin/clients/{}", encode(&client_id)),
            None,
        ),
        Noun::Clients {
            verb: ClientVerb::RotateSecret { client_id },
        } => (
            Method::POST,
            format!("/admin/clients/{}/rotate-secret", encode(&client_id)),
            None,
        ),
        Noun::Events {
            verb:
                EventVerb::List {
                    client_id,
                    event_type,
                    since,
                    limit,
                },
        } => {
            let mut query = form_urlencoded_pairs(&[
                ("client_id", client_id),
                ("type", event_type),
                ("since", since),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            if !query.is_empty() {
                query.insert(0, '?');
            }
            (Method::GET, format!("/admin/events{query}"), None)
        }
        Noun::Consents {
            verb: ConsentVerb::List { username },
        } => {
            let mut query = form_urlencoded_pairs(&[("username", username)]);
            if !query.is_empty() {
                query.insert(0, '?');
            }
            (Method::GET, format!("/admin/consents{query}"), None)
        }
        Noun::Consents {
            verb:
                ConsentVerb::Revoke {
                    username,
                    client_id,
                },
        } => (
            Method::DELETE,
            format!(
                "/admin/consents/{}/{}",
                encode(&username),
                encode(&client_id)
            ),
            None,
        ),
        Noun::Keys {
            verb: KeyVerb::Rotate,
        } => (Method::POST, "/admin/keys/rotate".into(), None),
        Noun::Keys {
            verb: KeyVerb::List,
        } => (Method::GET, "/admin/keys".into(), None),
        Noun::InitialAccessTokens {
            verb:
                TokenVerb::Create {
                    expires_in,
                    description,
                },
        } => (
            Method::POST,
            "/admin/initial-access-tokens".into(),
            Some(json!({"expires_in": expires_in, "description": description})),
        ),
    };
    let url = format!("{}{}", args.url.trim_end_matches('/'), path);
    let client = reqwest::Client::new();
    let mut request = client.request(method, &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("CUSTOS_URL: cannot reach {}: {e}", args.url))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    let pretty = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() {
        if !pretty.is_empty() {
            println!("{pretty}");
        }
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            pretty.split_whitespace().collect::<Vec<_>>().join(" ")
        ))
    }
}

fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn form_urlencoded_pairs(pairs: &[(&str, Option<String>)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value {
            serializer.append_pair(name, value);
        }
    }
    serializer.finish()
}

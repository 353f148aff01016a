#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod challenge;
mod claims;
mod clock;
mod dpop;
mod jose;
mod jwk;
mod jwks;
mod keys;
pub mod metadata;
mod request;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod verifier;

pub use challenge::{ErrorCode, Rejection, Scheme};
pub use claims::{Actor, VerifiedToken};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dpop::{access_token_hash, htu_matches, MemoryReplayStore, ReplayStore, ReplayStoreError};
pub use jose::{Algorithm, UnsupportedAlgorithm};
pub use jwk::{JwkError, JwkSet, PublicJwk, MAX_KEYS};
#[cfg(feature = "http-jwks")]
pub use jwks::HttpJwks;
pub use jwks::{authorization_server_metadata_url, JwksError, JwksSource, StaticJwks};
pub use metadata::ProtectedResourceMetadata;
pub use request::Request;
pub use verifier::{BuildError, DpopPolicy, Verifier, VerifierBuilder};

//! Request-time policy for custos: Cedar policies decide every issuance.
//!
//! Each token request is asked as one Cedar authorization request per
//! resource (CONTRACT.md, "Request-time policy (Cedar)"): may the client
//! (`Custos::Client`) get a token by this grant (`Custos::Action`) for this
//! resource (`Custos::Resource`), given the context? Operators store policy
//! records ([`check_record`] refuses what does not parse or validate against
//! [`SCHEMA`] in strict mode); [`PolicySet::compile`] builds one set from
//! them; [`PolicySet::decide`] answers with a [`Decision`] naming the
//! policies that decided.
//!
//! Architecture invariant: pure. No I/O, no clock, no `.await`; depends on
//! no tokio, sqlx, axum, reqwest or hyper. Nothing here panics on any input:
//! every failure is an `Err` or a denial.

mod defaults;
mod error;
mod index;
mod limits;
mod record;
mod request;
mod schema;
mod set;

pub use defaults::{default_records, DEFAULT_MAX_DELEGATION_DEPTH, DEFAULT_POLICIES};
pub use error::{PolicyError, PolicyErrorKind, MAX_MESSAGE_BYTES};
pub use limits::{MAX_IFS, MAX_NESTING, MAX_OPERATORS};
pub use record::{
    check_record, is_valid_id, AsRecord, Effect, PolicyRecord, PolicySummary, RecordSummary,
    MAX_ID_BYTES, MAX_RECORD_BYTES,
};
pub use request::{ClientFacts, ContextFacts, Grant, Request, ResourceFacts};
pub use schema::{schema, SCHEMA};
pub use set::{Decision, PolicySet, MAX_DECISION_ERRORS};

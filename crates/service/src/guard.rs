//! Guessable bearer credentials: the admin token (also an initial access
//! token) compared in constant time, every check under the brute-force
//! brake.

use crate::brake::Brake;
use crate::crypto::{constant_time_eq, sha256};
use crate::error::ServiceError;
use crate::request::RequestContext;
use custos_protocol::client_auth::Secret;
use custos_protocol::ErrorCode;

pub struct BearerGuard {
    admin_token: Option<Secret>,
    brake: Brake,
}

impl BearerGuard {
    pub fn new(admin_token: Option<Secret>) -> Self {
        BearerGuard {
            admin_token,
            brake: Brake::default(),
        }
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Whether `token` is the admin token (constant time).
    pub fn is_admin_token(&self, token: &str) -> bool {
        self.admin_token
            .as_ref()
            .is_some_and(|admin| constant_time_eq(&sha256(admin.expose()), &sha256(token)))
    }

    /// Runs `check` unless `ctx`'s source is braked (then `Throttled`, with
    /// the seconds left in its window); a check that fails with
    /// `invalid_token` counts against the source.
    pub async fn braked<T>(
        &self,
        ctx: &RequestContext,
        check: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let now = ctx.now();
        if let Some(retry_after) = self.brake.retry_after(ctx.source(), now) {
            return Err(ServiceError::Throttled {
                retry_after,
                description: format!(
                    "too many failed attempts from this address; retry in {retry_after} s"
                ),
            });
        }
        let result = check.await;
        if let Err(ServiceError::OAuth(error)) = &result {
            if error.code == ErrorCode::InvalidToken {
                self.brake.record_failure(ctx.source(), now);
            }
        }
        result
    }
}

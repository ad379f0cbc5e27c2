//! Every error the API sends: a status code and a JSON body
//! `{"detail": "<what went wrong and what to do>", "code": "<stable_code>"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use coderun_engine::EngineError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub retry_after_s: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"detail": "unsupported language 'cobol'; supported: python, rust, typescript", "code": "unsupported_language"}))]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub detail: String,
    /// Stable machine-readable code, e.g. `invalid_request`, `unauthorized`, `overloaded`.
    pub code: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after_s: None,
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; see GET / for the list of endpoints",
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept that method; see GET / for the list of endpoints",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::InvalidRequest { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.to_string())
            }
            EngineError::UnsupportedLanguage { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported_language",
                e.to_string(),
            ),
            EngineError::LanguageUnavailable { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "language_unavailable", e.to_string())
            }
            EngineError::TypecheckUnavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "typecheck_unavailable",
                e.to_string(),
            ),
            EngineError::Overloaded { retry_after_s, .. } => ApiError {
                retry_after_s: Some(retry_after_s),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
            },
            // Details are logged by the engine; the client gets no host paths or errnos.
            EngineError::Sandbox(_) | EngineError::Internal(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "sandbox_error",
                "the sandbox failed to run this request; the program did not run. The failure is logged on the server; try again or contact the operator",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                detail: self.detail,
                code: self.code.to_string(),
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after_s {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

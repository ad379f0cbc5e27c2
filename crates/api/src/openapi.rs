//! The OpenAPI 3 description of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the types' `ToSchema` derives, served at `GET /openapi.json`; and the
//! Swagger UI at `GET /docs` (its assets are compiled in from `utoipa-swagger-ui-vendored`,
//! nothing is fetched at build time or run time, and the page fetches nothing from another
//! host: no validator badge).

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr, Type};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::types::{
    ExecuteBody, ExecuteResponse, FileBody, HealthBody, HealthNotReady, HealthReport, HealthStatus,
    LanguageInfo, LanguageList, LiveStatus, Liveness, NotReadyStatus, RunStatus, SandboxCheck,
    ServiceInfo,
};
use crate::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "coderun",
        description = "Secure code execution: Python, TypeScript and Rust in a native Linux sandbox.\n\n\
            Errors are always JSON `{\"detail\", \"code\"}`. When the server has API keys configured, \
            every route except `/livez` (and `/health`, `/metrics` unless configured otherwise) needs \
            `Authorization: Bearer <key>` or `X-API-Key: <key>`. Every response carries `X-Request-Id`."
    ),
    paths(
        crate::execute,
        crate::health,
        crate::livez,
        crate::metrics_text,
        crate::languages,
        crate::index,
        openapi_json,
        docs_redirect,
        docs_index,
        docs_asset,
    ),
    components(schemas(
        ExecuteBody,
        FileBody,
        ExecuteResponse,
        RunStatus,
        ErrorBody,
        Liveness,
        LiveStatus,
        LanguageList,
        LanguageInfo,
        HealthBody,
        HealthReport,
        HealthStatus,
        SandboxCheck,
        HealthNotReady,
        NotReadyStatus,
        ServiceInfo,
        OpenApiDocument,
        OpenApiInfo,
        OpenApiLicense,
        OpenApiTag,
    )),
    modifiers(&Common),
    tags(
        (name = "execute", description = "Run programs"),
        (name = "service", description = "Probes, metrics and discovery"),
        (name = "docs", description = "This API's description"),
    )
)]
pub struct ApiDoc;

/// Adds what every operation shares: the security schemes, the `X-Request-Id` request
/// parameter and the `X-Request-Id` header on every response.
struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        let string = || ObjectBuilder::new().schema_type(Type::String).build();
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                op.parameters.get_or_insert_with(Vec::new).push(
                    ParameterBuilder::new()
                        .name("X-Request-Id")
                        .parameter_in(ParameterIn::Header)
                        .description(Some(
                            "Optional request id (1-64 of `A-Za-z0-9-_.`); echoed back, else one is made",
                        ))
                        .schema(Some(string()))
                        .build(),
                );
                for resp in op.responses.responses.values_mut() {
                    if let RefOr::T(resp) = resp {
                        resp.headers.insert(
                            "X-Request-Id".to_string(),
                            HeaderBuilder::new()
                                .schema(string())
                                .description(Some("The request's id (also in the server's log)"))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

/// What `GET /openapi.json` answers: this API's OpenAPI 3.1 document. Only its top level is
/// described here; what lies below `paths` and `components` is defined by the OpenAPI 3.1
/// specification (https://spec.openapis.org/oas/v3.1.0).
// Documentation only: the body is utoipa's serialisation of `ApiDoc`, checked against this
// schema by the API suite (tests/api/openapi.rs).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct OpenApiDocument {
    /// The OpenAPI version, `3.1.0`.
    openapi: String,
    info: OpenApiInfo,
    /// Operations by path, as the OpenAPI specification defines them.
    #[schema(value_type = Object)]
    paths: (),
    /// Schemas and security schemes, as the OpenAPI specification defines them.
    #[schema(value_type = Object)]
    components: (),
    tags: Vec<OpenApiTag>,
}

/// The document's `info`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct OpenApiInfo {
    /// `coderun`.
    title: String,
    /// coderun's version.
    version: String,
    description: Option<String>,
    license: Option<OpenApiLicense>,
}

/// The license of this API.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct OpenApiLicense {
    /// E.g. `Apache-2.0`.
    name: String,
    /// SPDX identifier.
    identifier: Option<String>,
    url: Option<String>,
}

/// A group of operations.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct OpenApiTag {
    name: String,
    description: Option<String>,
}

/// The spec as JSON text, built once.
pub fn spec_json() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// This API's OpenAPI 3 description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = OpenApiDocument),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Rate limit exceeded", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
pub(crate) async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], spec_json()).into_response()
}

/// Swagger UI: redirects to `/docs/`, the page itself.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 303, description = "Redirect to `/docs/` (the Swagger UI page)",
            headers(("Location" = String, description = "`/docs/`"))),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Rate limit exceeded", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
pub(crate) async fn docs_redirect() -> Redirect {
    Redirect::to("/docs/")
}

/// Swagger UI page, rendering `/openapi.json`; works offline (assets are served from `/docs/`).
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "docs",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The Swagger UI page", content_type = "text/html", body = String),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Rate limit exceeded", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The page cannot be rendered (`internal_error`)", body = ErrorBody),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
pub(crate) async fn docs_index() -> Response {
    docs_file("")
}

/// A Swagger UI asset (script, style sheet, image).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    params(("file" = String, Path, description = "Asset name, e.g. `swagger-ui.css`")),
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The asset, with its own content type (JavaScript, CSS, PNG, HTML)", content_type = "*/*", body = String),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "No such asset", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The asset cannot be rendered (`internal_error`)", body = ErrorBody),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
pub(crate) async fn docs_asset(
    file: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    match file {
        Ok(Path(file)) => docs_file(&file),
        // A name that is not UTF-8 names no asset: the usual JSON 404, not axum's text.
        Err(_) => crate::error::ApiError::not_found().into_response(),
    }
}

fn docs_file(path: &str) -> Response {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            // The page loads nothing from another host. Swagger UI's default validator is
            // swagger.io's online one: off ("none"), or every page served from a host other
            // than localhost would send the spec's URL there for a badge. And the page's
            // query string may not point the UI at another spec or config.
            let config = utoipa_swagger_ui::Config::from("/openapi.json")
                .validator_url("none")
                .query_config_enabled(false);
            Arc::new(config)
        })
        .clone();
    match utoipa_swagger_ui::serve(path, config) {
        Ok(Some(file)) => (
            [(header::CONTENT_TYPE, file.content_type)],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => ApiError::not_found().into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the Swagger UI");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "cannot render the API docs page",
            )
            .into_response()
        }
    }
}

//! The browser dashboard: the files of `ASSETS_PATH` under `/dashboard/`, any other path below
//! it answered with the page itself (the page routes `/dashboard/node/<peer_id>` and
//! `/dashboard/benchmarks/...` in the browser), and a plain `GET /` sent there. The page reads
//! only the public JSON API.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::dev::{fn_service, ServiceRequest, ServiceResponse};
use actix_web::guard::GuardContext;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};

/// Nothing but our own files: no inline script, no other origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// Whether a request asks for a WebSocket (`Upgrade: websocket`, in any case).
pub fn wants_websocket(ctx: &GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// `GET /` and `GET /dashboard` without an upgrade: the dashboard.
pub async fn to_dashboard() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "/dashboard/"))
        .finish()
}

pub fn config(cfg: &mut web::ServiceConfig, assets: &Path) {
    if !assets.join("index.html").is_file() {
        log::warn!(
            "ASSETS_PATH {} has no index.html: /dashboard/ will answer 404",
            assets.display()
        );
    }
    let index: PathBuf = assets.join("index.html");
    cfg.service(web::resource("/dashboard").route(web::get().to(to_dashboard)))
        .service(
            web::scope("/dashboard")
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CONTENT_SECURITY_POLICY, CSP))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .service(
                    Files::new("", assets)
                        .index_file("index.html")
                        .default_handler(fn_service(move |req: ServiceRequest| {
                            let index = index.clone();
                            async move {
                                let (req, _) = req.into_parts();
                                let response = match NamedFile::open_async(&index).await {
                                    Ok(file) => file.into_response(&req),
                                    Err(_) => HttpResponse::NotFound().finish(),
                                };
                                Ok(ServiceResponse::new(req, response))
                            }
                        })),
                ),
        );
}

//! The browser dashboard: the files of `static/`, built into the binary (so an installed binary
//! serves them from wherever it runs), or those of `ASSETS_PATH` when it is set (for people who
//! change the page), under `/dashboard/`; any other path below it is answered with the page
//! itself (the page routes `/dashboard/node/<peer_id>` and `/dashboard/benchmarks/...` in the
//! browser), and a plain `GET /` is sent there. The page reads only the public JSON API.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::dev::{fn_service, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};

/// Nothing but our own files: no inline script, no other origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// Whether a request asks for a WebSocket (`Upgrade: websocket`, in any case).
pub fn wants_websocket(headers: &header::HeaderMap) -> bool {
    headers
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

/// A file built into the binary.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../static/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../static/favicon.svg"),
    },
];

/// `GET /dashboard/{path}` from the built-in files: the file of that name, or the page. Each is
/// revalidated by its ETag (a hash of its bytes), so a new build is picked up at once.
async fn built_in(req: actix_web::HttpRequest) -> HttpResponse {
    let name = req.match_info().query("path");
    let asset = ASSETS.iter().find(|a| a.name == name).unwrap_or(&ASSETS[0]);
    let etag = format!("\"{:016x}\"", fnv1a(asset.body));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        return response.finish();
    }
    response
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .body(asset.body)
}

/// FNV-1a: a cheap, stable hash for the ETags.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

pub fn config(cfg: &mut web::ServiceConfig, assets: Option<&Path>) {
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    cfg.service(web::resource("/dashboard").route(web::get().to(to_dashboard)));
    let Some(assets) = assets else {
        cfg.service(
            web::scope("/dashboard")
                .wrap(headers)
                .route("/{path:.*}", web::get().to(built_in)),
        );
        return;
    };
    if !assets.join("index.html").is_file() {
        log::warn!(
            "ASSETS_PATH {} has no index.html: /dashboard/ will answer 404",
            assets.display()
        );
    }
    let index: PathBuf = assets.join("index.html");
    cfg.service(
        web::scope("/dashboard").wrap(headers).service(
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

//! `/openapi.json` describes every route of the route table, with its methods.

use serde_json::Value;

use crate::common::{TestApp, TestDb};

/// (path, method) of every route registered in `src/api/mod.rs`, trailing-slash twins folded.
fn routes_in_the_table() -> Vec<(String, String)> {
    let source = include_str!("../../src/api/mod.rs");
    let table = &source[source.find("pub fn config").expect("the route table")..];
    let mut routes = Vec::new();
    for service in table.split(".service(").skip(1) {
        let Some(start) = service.find("web::resource(") else {
            continue;
        };
        let args = &service[start
            ..service[start..]
                .find(')')
                .map_or(service.len(), |e| start + e)];
        let paths: Vec<&str> = args.split('"').skip(1).step_by(2).collect();
        for method in ["get", "post", "put", "delete"] {
            if service.contains(&format!("web::{method}()")) {
                for path in &paths {
                    let path = if path.len() > 1 {
                        path.trim_end_matches('/')
                    } else {
                        path
                    };
                    routes.push((path.to_owned(), method.to_owned()));
                }
            }
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

#[test]
fn openapi_documents_every_route() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[]);
    let (status, body) = app.get("/openapi.json");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let routes = routes_in_the_table();
    assert!(routes.len() >= 20, "{routes:?}");
    for (path, method) in &routes {
        assert!(
            doc["paths"][path.as_str()][method.as_str()].is_object(),
            "{method} {path} is not in /openapi.json"
        );
    }
    // And nothing documented that the table lacks.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, routes.len(), "{routes:?}");
    // Every $ref resolves.
    for reference in body.split("\"$ref\":\"").skip(1) {
        let name = reference.split('"').next().unwrap();
        let pointer = name.trim_start_matches('#');
        assert!(doc.pointer(pointer).is_some(), "dangling {name}");
    }
}

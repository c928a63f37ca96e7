//! Every /api route refuses a request without the admin token (401), and a wrong token.

use crate::common::Server;

#[test]
fn every_api_route_requires_the_admin_token() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let kb = server.create_kb("auth");
    let routes = [
        ("GET", "/api/kbs".to_string()),
        ("POST", "/api/kbs".to_string()),
        ("GET", format!("/api/kbs/{kb}")),
        ("PATCH", format!("/api/kbs/{kb}")),
        ("DELETE", format!("/api/kbs/{kb}")),
        ("GET", format!("/api/kbs/{kb}/documents")),
        ("POST", format!("/api/kbs/{kb}/documents")),
        ("GET", format!("/api/kbs/{kb}/documents/x")),
        ("PATCH", format!("/api/kbs/{kb}/documents/x")),
        ("DELETE", format!("/api/kbs/{kb}/documents/x")),
        ("GET", format!("/api/kbs/{kb}/documents/x/chunks")),
        ("PATCH", format!("/api/kbs/{kb}/documents/x/chunks/1")),
        ("DELETE", format!("/api/kbs/{kb}/documents/x/chunks/1")),
        ("POST", format!("/api/kbs/{kb}/split-preview")),
        ("POST", format!("/api/kbs/{kb}/search")),
        ("GET", format!("/api/kbs/{kb}/index-check")),
        ("GET", "/api/jobs".to_string()),
        ("GET", "/api/jobs/1".to_string()),
        ("GET", "/api/no-such-route".to_string()),
    ];
    let http = reqwest::blocking::Client::new();
    for (method, path) in &routes {
        for token in [None, Some("wrong-token")] {
            let mut req = http.request(method.parse().unwrap(), server.url(path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {token:?}");
            let body: serde_json::Value = r.json().unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    // The KB survived every unauthorised DELETE.
    let (status, _) = server.get(&format!("/api/kbs/{kb}"));
    assert_eq!(status, 200);
    // Health needs no token.
    assert_eq!(
        http.get(server.url("/health"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

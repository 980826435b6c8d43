//! Social (F-005): public personas, the share page and its card image (locally and through
//! the API Gateway entry), visibility of the persona as a whole, shares, compatibility.

use integration_tests::{repo_path, spawn_app, Owner, TestApp};
use reqwest::{StatusCode, Url};
use scraper::{Html, Selector};
use serde_json::{json, Value};
use tower::ServiceExt;

const PUBLIC_FIELDS: [&str; 8] = [
    "id",
    "version",
    "name",
    "archetype",
    "stats",
    "traits",
    "greeting",
    "card",
];

fn id_of(persona: &Value) -> String {
    persona["id"].as_str().expect("a persona id").to_owned()
}

/// The `content` of `<meta property|name="{key}">`.
fn meta(document: &Html, key: &str) -> Option<String> {
    let selector =
        Selector::parse(&format!(r#"meta[property="{key}"], meta[name="{key}"]"#)).unwrap();
    document
        .select(&selector)
        .next()
        .and_then(|element| element.value().attr("content"))
        .map(str::to_owned)
}

fn select_all<'a>(document: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    let selector = Selector::parse(css).unwrap();
    document.select(&selector).collect()
}

fn text_of(document: &Html, css: &str) -> String {
    select_all(document, css)
        .first()
        .map(|element| element.text().collect())
        .unwrap_or_default()
}

/// (width, height) of a PNG.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().expect("a PNG");
    let info = reader.info();
    (info.width, info.height)
}

async fn page(app: &TestApp, id: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = app.get(&format!("/p/{id}")).await;
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn compatibility(app: &TestApp, owner: &Owner, persona_id: &str) -> reqwest::Response {
    app.get_as(
        owner,
        &format!("/v1/social/compatibility?persona_id={persona_id}"),
    )
    .await
}

#[tokio::test]
async fn a_public_persona_answers_by_any_version_id_with_its_newest_version_and_public_fields_only()
{
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("public@example.com").await;
    let first = app.persona(&owner).await;

    let private = app
        .get(&format!("/v1/personas/{}/public", id_of(&first)))
        .await;
    assert_eq!(private.status(), 404, "private until published");

    app.publish(&owner).await;
    let second = app.next_persona_version(&owner).await;
    assert_eq!(second["is_public"], true, "a later version is public too");

    for asked in [id_of(&first), id_of(&second)] {
        let response = app.get(&format!("/v1/personas/{asked}/public")).await;
        assert_eq!(response.status(), 200);
        let public: Value = response.json().await.unwrap();
        let mut keys: Vec<&str> = public
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected = PUBLIC_FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected, "nothing else leaves: {public}");
        assert_eq!(public["id"], second["id"], "the newest version answers");
        assert_eq!(public["version"], 2);
        assert_eq!(public["name"], second["name"]);
        assert_eq!(
            public["card"],
            json!({
                "url": format!("{}/p/{}/card.png", app.config().web.frontend_url, id_of(&second)),
                "width": 1200,
                "height": 630,
            })
        );
        let text = public.to_string();
        assert!(!text.contains(&owner.id), "no owner id");
        assert!(!text.contains("public@example.com"), "no email");
    }
    let unknown = app
        .get(&format!("/v1/personas/{}/public", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn unpublishing_hides_every_version_at_once_from_the_route_the_page_the_image_and_compatibility(
) {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("both@example.com").await;
    let viewer = app.owner_with_ready_persona("viewer@example.com").await;
    let first = id_of(&app.persona(&owner).await);
    app.publish(&owner).await;
    let second = id_of(&app.next_persona_version(&owner).await);
    let statuses = || async {
        let mut statuses = Vec::new();
        for id in [&first, &second] {
            statuses.push(app.get(&format!("/v1/personas/{id}/public")).await.status());
            statuses.push(app.get(&format!("/p/{id}")).await.status());
            statuses.push(app.get(&format!("/p/{id}/card.png")).await.status());
            statuses.push(compatibility(&app, &viewer, id).await.status());
        }
        statuses
    };
    assert!(
        statuses().await.iter().all(|status| *status == 200),
        "{:?}",
        statuses().await
    );

    let unpublished = app.unpublish(&owner).await;

    assert_eq!(unpublished["is_public"], false);
    assert!(
        statuses().await.iter().all(|status| *status == 404),
        "{:?}",
        statuses().await
    );
    assert_eq!(
        app.count("SELECT count(*) FROM persona_visibility WHERE is_public")
            .await,
        0
    );
}

#[tokio::test]
async fn the_share_page_carries_every_preview_tag_with_absolute_urls_and_its_image_is_a_1200x630_png(
) {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("page@example.com").await;
    let persona = app.publish(&owner).await;
    let id = id_of(&persona);
    let frontend = app.config().web.frontend_url.clone();

    let (status, headers, html) = page(&app, &id).await;

    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let cache = headers["cache-control"].to_str().unwrap();
    assert!(
        cache.starts_with("public") && cache.contains("max-age="),
        "{cache}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("img-src 'self'") && csp.contains("style-src 'sha256-"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src"),
        "{csp}"
    );
    let document = Html::parse_document(&html);
    assert!(document.errors.is_empty(), "{:?}", document.errors);
    let canonical = format!("{frontend}/p/{id}");
    let image = format!("{frontend}/p/{id}/card.png");
    assert_eq!(
        meta(&document, "og:url").as_deref(),
        Some(canonical.as_str())
    );
    assert_eq!(meta(&document, "og:image").as_deref(), Some(image.as_str()));
    assert_eq!(meta(&document, "og:image:width").as_deref(), Some("1200"));
    assert_eq!(meta(&document, "og:image:height").as_deref(), Some("630"));
    assert_eq!(meta(&document, "og:type").as_deref(), Some("profile"));
    assert_eq!(
        meta(&document, "twitter:card").as_deref(),
        Some("summary_large_image")
    );
    let name = persona["name"].as_str().unwrap();
    let archetype = persona["archetype"].as_str().unwrap();
    for tag in ["og:title", "og:image:alt", "twitter:title"] {
        assert!(meta(&document, tag).unwrap().contains(name), "{tag}");
    }
    assert!(!meta(&document, "og:description").unwrap().is_empty());
    for url in [&canonical, &image] {
        assert!(Url::parse(url).is_ok(), "absolute: {url}");
    }
    let link = select_all(&document, r#"link[rel="canonical"]"#);
    assert_eq!(link[0].value().attr("href"), Some(canonical.as_str()));
    assert_eq!(text_of(&document, "h1"), name);
    assert!(text_of(&document, ".pill").eq_ignore_ascii_case(archetype));
    assert_eq!(text_of(&document, "blockquote"), persona["greeting"]);
    let links: Vec<_> = select_all(&document, "a[href]")
        .iter()
        .map(|a| a.value().attr("href").unwrap().to_owned())
        .collect();
    assert!(links.contains(&format!("{frontend}/")), "{links:?}");
    assert!(select_all(&document, "script").is_empty());

    // The image, as a crawler fetches it: no credentials, the og:image path on our domain.
    let path = image.strip_prefix(&frontend).unwrap();
    let response = app.get(path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("public"));
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(png_size(&response.bytes().await.unwrap()), (1200, 630));
    let img = select_all(&document, "img.card");
    assert_eq!(
        img[0].value().attr("src"),
        Some(path),
        "the page shows it too"
    );

    let revalidated = app
        .http
        .get(app.url(path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn hostile_persona_text_renders_as_text_in_html_attribute_and_url_contexts() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("hostile@example.com").await;
    let id = id_of(&app.publish(&owner).await);
    let hostile = [
        "<script>alert(1)</script>",
        r#""><img src=x onerror=alert(1)>"#,
        "' autofocus onfocus='alert(1)",
        "</title><style>*{display:none}</style>",
        "javascript:alert(1)",
        "a&b=c#frag?x=<y> %20 \u{202e}",
        "미라 <b>굵게</b> 🪞",
    ];

    for text in hostile {
        app.set_persona_text(&owner, text).await;
        let (status, _, html) = page(&app, &id).await;

        assert_eq!(status, 200, "{text}");
        let document = Html::parse_document(&html);
        assert!(select_all(&document, "script").is_empty(), "{text}: {html}");
        assert_eq!(select_all(&document, "style").len(), 1, "{text}");
        assert_eq!(select_all(&document, "img").len(), 1, "{text}");
        assert!(select_all(&document, "b").is_empty(), "{text}");
        assert!(
            select_all(&document, "[onerror], [onfocus], [autofocus]").is_empty(),
            "{text}"
        );
        // HTML text: the string comes back as text, exactly.
        assert_eq!(text_of(&document, "h1"), text);
        assert_eq!(text_of(&document, "blockquote"), text);
        assert_eq!(text_of(&document, ".traits li"), text);
        assert!(text_of(&document, "title").starts_with(text), "{text}");
        // Attributes: the parsed value holds the string, and nothing broke out of it.
        assert!(
            meta(&document, "og:title").unwrap().starts_with(text),
            "{text}"
        );
        let alt = select_all(&document, "img")[0]
            .value()
            .attr("alt")
            .unwrap()
            .to_owned();
        assert!(alt.contains(text), "{text}");
        // URL: the share link stays one link to X whose text parameter decodes to the string.
        let share = select_all(&document, "a.secondary")[0]
            .value()
            .attr("href")
            .unwrap()
            .to_owned();
        let url = Url::parse(&share).unwrap();
        assert_eq!(
            (url.scheme(), url.host_str(), url.path()),
            ("https", Some("x.com"), "/intent/post")
        );
        assert_eq!(url.fragment(), None, "{text}");
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(params.len(), 2, "{text}: {share}");
        assert!(params[0].1.contains(text), "{text}: {share}");
        assert_eq!(
            params[1].1,
            format!("{}/p/{id}", app.config().web.frontend_url)
        );
        // And the JSON carries it verbatim (the client escapes for its own context).
        let public: Value = app
            .get(&format!("/v1/personas/{id}/public"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(public["name"], text);
    }
}

#[tokio::test]
async fn private_unknown_and_malformed_ids_get_a_404_page_without_any_persona_data() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("private@example.com").await;
    let persona = app.persona(&owner).await;
    let id = id_of(&persona);

    for asked in [
        id.clone(),
        uuid::Uuid::now_v7().to_string(),
        "not-a-uuid".into(),
    ] {
        let (status, headers, html) = page(&app, &asked).await;

        assert_eq!(status, 404, "{asked}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let document = Html::parse_document(&html);
        assert!(select_all(&document, r#"meta[property^="og:"]"#).is_empty());
        assert!(select_all(&document, "img").is_empty());
        for private in [
            persona["name"].as_str().unwrap(),
            persona["greeting"].as_str().unwrap(),
            &id,
            &asked,
            &owner.id,
        ] {
            assert!(!html.contains(private), "{asked}: {private}");
        }
        // The stylesheet names every archetype; the page's text names none.
        let archetype = persona["archetype"].as_str().unwrap();
        assert!(!text_of(&document, "body")
            .to_lowercase()
            .contains(archetype));
        let image = app.get(&format!("/p/{asked}/card.png")).await;
        assert_eq!(image.status(), 404, "{asked}");
        assert_ne!(image.headers()["content-type"], "image/png");
    }
}

/// Runs an API Gateway HTTP API event from `events/http_api/` for persona `id` through
/// `lambda_http`'s adapter, exactly as the Lambda runtime does, and returns the JSON that goes
/// back to API Gateway.
async fn through_lambda(app: &TestApp, event_file: &str, id: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(&format!("events/http_api/{event_file}")))
        .unwrap()
        .replace("0193a7f2-6c1e-7b4a-9d2e-5f8c1a3b4d6e", id);
    let request: lambda_http::request::LambdaRequest = serde_json::from_str(&text).unwrap();
    let event = lambda_http::LambdaEvent::new(request, lambda_http::Context::default());
    let adapter = lambda_http::Adapter::from(api::router(app.state.clone()));
    let response = adapter.oneshot(event).await.unwrap();
    serde_json::to_value(response).unwrap()
}

#[tokio::test]
async fn the_card_and_page_are_served_through_the_api_gateway_entry_binary_as_base64() {
    use base64::Engine;
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("gateway@example.com").await;
    let id = id_of(&app.publish(&owner).await);

    let card = through_lambda(&app, "get-share-card.json", &id).await;
    let page = through_lambda(&app, "get-share-page.json", &id).await;

    assert_eq!(card["statusCode"], 200);
    assert_eq!(
        card["isBase64Encoded"], true,
        "API Gateway decodes it back to bytes"
    );
    assert_eq!(card["headers"]["content-type"], "image/png");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(card["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(png_size(&bytes), (1200, 630));
    assert_eq!(page["statusCode"], 200);
    assert_eq!(page["isBase64Encoded"], false);
    let html = page["body"].as_str().unwrap();
    let document = Html::parse_document(html);
    assert_eq!(
        meta(&document, "og:image"),
        Some(format!("{}/p/{id}/card.png", app.config().web.frontend_url))
    );
}

#[tokio::test]
async fn a_share_is_recorded_with_a_persona_shared_event_and_replayed_by_its_idempotency_key() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("share@example.com").await;
    let events = "SELECT count(*) FROM domain_events WHERE kind = 'persona_shared'";
    let share = |key: &'static str, body: Value| {
        app.http
            .post(app.url("/v1/personas/me/shares"))
            .bearer_auth(&owner.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };

    let private = share("k0", json!({"channel": "link"})).await.unwrap();
    assert_eq!(private.status(), 409);
    assert_eq!(
        private.json::<Value>().await.unwrap()["error"]["code"],
        "persona_not_public"
    );
    let persona = app.publish(&owner).await;
    let first = share("k1", json!({"channel": "kakao"})).await.unwrap();
    let replay = share("k1", json!({"channel": "kakao"})).await.unwrap();
    let other_body = share("k1", json!({"channel": "x"})).await.unwrap();
    let unknown = share("k2", json!({"channel": "fax"})).await.unwrap();
    let signed_out = app
        .post("/v1/personas/me/shares", json!({"channel": "qr"}))
        .await;

    assert_eq!(first.status(), 201);
    let recorded: Value = first.json().await.unwrap();
    assert_eq!(recorded["channel"], "kakao");
    assert_eq!(recorded["persona_id"], persona["id"]);
    let share_url = recorded["share_url"].as_str().unwrap();
    assert_eq!(
        share_url,
        format!(
            "{}/p/{}?s={}",
            app.config().web.frontend_url,
            id_of(&persona),
            recorded["id"].as_str().unwrap()
        )
    );
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], recorded["id"]);
    assert_eq!(other_body.status(), 422);
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_body"
    );
    assert_eq!(signed_out.status(), 401);
    // Recorded, not counted: a share counts once its link is opened from another address.
    assert_eq!(app.count(events).await, 0);
    app.open_share_link(share_url, 1).await;
    assert_eq!(
        app.count(events).await,
        0,
        "the owner opening it does not count"
    );
    app.open_share_link(share_url, 91).await;
    app.open_share_link(share_url, 92).await;
    assert_eq!(app.count(events).await, 1, "observed once, counted once");
    assert_eq!(
        app.count("SELECT count(*) FROM persona_shares WHERE channel = 'kakao'")
            .await,
        1
    );

    let nobody = app.owner("nobody@example.com").await;
    let none = app
        .post_as(&nobody, "/v1/personas/me/shares", json!({"channel": "qr"}))
        .await;
    assert_eq!(none.status(), 404);
    assert_eq!(
        none.json::<Value>().await.unwrap()["error"]["code"],
        "no_persona"
    );
    assert_eq!(app.count(events).await, 1);
}

#[tokio::test]
async fn compatibility_is_symmetric_between_two_public_personas_and_explains_itself() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let mira = app.owner_with_ready_persona("mira@example.com").await;
    let jun = app.owner_with_ready_persona("jun@example.com").await;
    app.next_persona_version(&jun).await;
    let mira_id = id_of(&app.publish(&mira).await);
    let jun_id = id_of(&app.publish(&jun).await);

    let forward = compatibility(&app, &mira, &jun_id).await;
    let backward = compatibility(&app, &jun, &mira_id).await;

    assert_eq!(forward.status(), 200);
    assert_eq!(backward.status(), 200);
    let (forward, backward): (Value, Value) = (
        forward.json().await.unwrap(),
        backward.json().await.unwrap(),
    );
    assert_eq!(forward["score"], backward["score"]);
    assert_eq!(forward["label"], backward["label"]);
    let score = forward["score"].as_u64().unwrap();
    let band = match score {
        80..=100 => "HARMONIC",
        60..=79 => "BALANCED",
        40..=59 => "CHALLENGING",
        0..=39 => "MIRROR",
        _ => panic!("score {score} out of range"),
    };
    assert_eq!(forward["label"], band);
    let stats = forward["breakdown"]["stats"].as_array().unwrap();
    assert_eq!(stats.len(), 4);
    for (mine, theirs) in stats
        .iter()
        .zip(backward["breakdown"]["stats"].as_array().unwrap())
    {
        assert_eq!(mine["mine"], theirs["theirs"]);
        assert_eq!(mine["gap"], theirs["gap"]);
    }
    assert!(forward["breakdown"]["affinity"]["points"].is_i64());
    let reasons = forward["reasons"].as_array().unwrap();
    assert!((2..=4).contains(&reasons.len()), "{reasons:?}");
    let again: Value = compatibility(&app, &mira, &jun_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, forward, "deterministic");
}

#[tokio::test]
async fn compatibility_refuses_bad_ids_missing_tokens_private_own_and_unready_personas() {
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let mira = app.owner_with_ready_persona("mira@example.com").await;
    let jun = app.owner_with_ready_persona("jun@example.com").await;
    let mira_id = id_of(&app.publish(&mira).await);
    let jun_id = id_of(&app.persona(&jun).await);
    let newcomer = app.owner("new@example.com").await;
    app.survey(&newcomer).await;
    let code = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };

    let cases = [
        (
            compatibility(&app, &mira, "not-a-uuid").await,
            400,
            "invalid_query",
        ),
        (
            app.get_as(&mira, "/v1/social/compatibility").await,
            400,
            "invalid_query",
        ),
        (
            app.get(&format!("/v1/social/compatibility?persona_id={jun_id}"))
                .await,
            401,
            "missing_token",
        ),
        (compatibility(&app, &mira, &jun_id).await, 404, "not_found"),
        (
            compatibility(&app, &mira, &uuid::Uuid::now_v7().to_string()).await,
            404,
            "not_found",
        ),
        (
            compatibility(&app, &mira, &mira_id).await,
            422,
            "own_persona",
        ),
        (
            compatibility(&app, &newcomer, &mira_id).await,
            409,
            "persona_not_ready",
        ),
    ];

    for (i, (response, status, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            code(response).await,
            (status, expected.to_owned()),
            "case {i}"
        );
    }
}

#[test]
fn the_openapi_document_covers_the_social_routes_with_their_content_types() {
    let document = serde_json::to_value(api::openapi_document()).unwrap();
    let paths = &document["paths"];

    for (path, method) in [
        ("/v1/personas/{id}/public", "get"),
        ("/v1/personas/me/shares", "post"),
        ("/v1/social/compatibility", "get"),
        ("/p/{id}", "get"),
        ("/p/{id}/card.png", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    assert!(paths["/p/{id}"]["get"]["responses"]["200"]["content"]["text/html"].is_object());
    assert!(
        paths["/p/{id}/card.png"]["get"]["responses"]["200"]["content"]["image/png"].is_object()
    );
}

//! The admin area: who may enter, what it lists, how it pages and searches, what it can do.

use std::collections::HashSet;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fake_op::AuthTime;
use crate::helpers::*;
use crate::sign_in::csrf_token_from_home;

fn bob() -> TestUser {
    TestUser::named("bob000000001", "Bob Builder")
}

/// Alice (she has the `admin` role), signed in recently enough for admin actions.
async fn admin_app(pool: PgPool) -> TestApp {
    let app = spawn_app(pool).await;
    app.stepped_up(&TestUser::alice()).await;
    app
}

async fn status_of_every_admin_route(app: &TestApp, user_id: Uuid, session_id: Uuid) -> Vec<u16> {
    let csrf = csrf_token_from_home(app).await.unwrap_or_default();
    vec![
        app.get("/admin").await.status().as_u16(),
        app.get("/admin?view=all").await.status().as_u16(),
        app.get(&format!("/admin/users/{user_id}")).await.status().as_u16(),
        app.get("/api/admin/users").await.status().as_u16(),
        app.post_form(&format!("/admin/sessions/{session_id}/revoke"), &[("csrf_token", &csrf)])
            .await
            .status()
            .as_u16(),
        app.post_form(&format!("/admin/users/{user_id}/sign-out-everywhere"), &[("csrf_token", &csrf)])
            .await
            .status()
            .as_u16(),
    ]
}

async fn some_session(pool: &PgPool) -> (Uuid, Uuid) {
    sqlx::query_as("select user_id, session_id from sessions where session_id is not null limit 1")
        .fetch_one(pool)
        .await
        .expect("a session")
}

#[sqlx::test]
async fn anonymous_users_are_sent_to_sign_in_and_apis_answer_401(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let response = app.get("/admin").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/sign-in?return_to=%2Fadmin");
    let response = app.get("/api/admin/users").await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.json::<Value>().await.expect("json")["error"], "not_authenticated");
    let response = app
        .post_form("/admin/users/00000000-0000-0000-0000-000000000000/sign-out-everywhere", &[("csrf_token", "x")])
        .await;
    assert_eq!(response.status(), 303, "anonymous POSTs go to sign-in too");
}

#[sqlx::test]
async fn a_signed_in_non_admin_gets_403_everywhere(pool: PgPool) {
    let alice = admin_app(pool.clone()).await;
    let (user_id, session_id) = some_session(&pool).await;
    let app = spawn_app_with(pool.clone(), alice.op.clone(), &[]).await;
    app.signed_in(&bob()).await;
    let statuses = status_of_every_admin_route(&app, user_id, session_id).await;
    assert_eq!(statuses, vec![403; 6]);
    let html = app.get("/admin").await.text().await.expect("html");
    assert!(html.contains("Access denied"));
    assert_eq!(alice.me_status().await, 200, "nothing was revoked");
}

#[sqlx::test]
async fn an_admin_by_role_gets_in(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let (user_id, session_id) = some_session(&pool).await;
    let statuses = status_of_every_admin_route(&app, user_id, session_id).await;
    assert_eq!(&statuses[..4], &[200, 200, 200, 200]);
    assert_eq!(&statuses[4..], &[303, 303]);
}

#[sqlx::test]
async fn an_admin_by_subject_allow_list_gets_in(pool: PgPool) {
    let op = FakeOp::start().await;
    let app = spawn_app_with(pool, op, &[("ADMIN_SUBJECTS", "someone-else, bob000000001")]).await;
    app.signed_in(&bob()).await;
    assert_eq!(app.get("/admin").await.status(), 200);
    assert_eq!(app.get("/api/admin/users").await.status(), 200);
}

#[sqlx::test]
async fn an_admin_whose_role_was_removed_loses_access_at_the_next_sign_in(pool: PgPool) {
    let app = admin_app(pool).await;
    assert_eq!(app.get("/admin").await.status(), 200);
    let mut demoted = TestUser::alice();
    demoted.claims.insert("roles".into(), serde_json::json!(["viewer"]));
    app.signed_in(&demoted).await;
    assert_eq!(app.get("/admin").await.status(), 403);
    assert_eq!(app.get("/api/admin/users").await.status(), 403);
}

#[sqlx::test]
async fn the_page_lists_signed_in_users_with_counts(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let other = spawn_app_with(pool, app.op.clone(), &[]).await;
    other.signed_in(&TestUser::hugging_face_user()).await;
    let html = app.get("/admin").await.text().await.expect("html");
    assert!(html.contains("Alice Example") && html.contains("alice@example.com"));
    assert!(html.contains("Hugo Face") && html.contains("hugo-hf"), "the Hugging Face username is listed");
    assert!(html.contains(r#"<strong id="count-users">2</strong>"#), "{html}");
    assert!(html.contains(r#"<strong id="count-signed-in">2</strong>"#));
    assert!(html.contains(r#"<strong id="count-sessions">2</strong>"#));
    assert!(html.contains(r#"<strong id="count-sign-ins">2</strong>"#));
    // Hugo signs out: he is still known but no longer signed in.
    let csrf = csrf_token_from_home(&other).await.expect("csrf");
    other.post_form("/sign-out", &[("csrf_token", &csrf)]).await;
    let active: Value = app.get("/api/admin/users").await.json().await.expect("json");
    let all: Value = app.get("/api/admin/users?active=false").await.json().await.expect("json");
    assert_eq!(active["users"].as_array().map(Vec::len), Some(1));
    assert_eq!(all["users"].as_array().map(Vec::len), Some(2));
    let hugo = all["users"].as_array().expect("users").iter().find(|u| u["subject"] == "hfuser000001").cloned();
    assert_eq!(hugo.expect("hugo is still known")["active_sessions"], 0);
}

async fn seed_users(pool: &PgPool, from: i32, to: i32, minutes_ago_base: i32) {
    sqlx::query(
        "insert into users (issuer, subject, name, username, email, last_activity_at, sessions_expire_at)
         select 'seed', 'seed-' || i, 'Seed User ' || i, 'seed' || i, 'seed' || i || '@example.com',
                now() - (($3 + i) * interval '1 minute'), now() + interval '1 day'
           from generate_series($1, $2) i",
    )
    .bind(from)
    .bind(to)
    .bind(minutes_ago_base)
    .execute(pool)
    .await
    .expect("seed");
}

#[sqlx::test]
async fn walking_all_pages_returns_every_active_user_exactly_once_while_new_users_sign_in(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    seed_users(&pool, 1, 130, 10).await;
    let mut seen: Vec<String> = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/users?cursor={c}"),
            None => "/api/admin/users".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.expect("json");
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 50);
        seen.extend(users.iter().map(|u| u["subject"].as_str().expect("subject").to_owned()));
        pages += 1;
        // Between page loads, new users sign in (newest activity: they sort before the cursor).
        seed_users(&pool, 1000 + pages * 10, 1000 + pages * 10 + 4, -10).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no user repeated");
    assert_eq!(pages, 3, "131 users in pages of 50");
    for i in 1..=130 {
        assert!(unique.contains(&format!("seed-{i}")), "seed-{i} was skipped");
    }
    assert!(unique.contains(&"alice0000001".to_owned()));
}

#[sqlx::test]
async fn search_finds_by_name_username_and_email_case_insensitively(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    seed_users(&pool, 1, 30, 10).await;
    let subjects = |v: Value| -> Vec<String> {
        v["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|u| u["subject"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let by_name = subjects(app.get("/api/admin/users?q=ALICE%20EXAMPLE").await.json().await.expect("json"));
    assert_eq!(by_name, vec!["alice0000001"]);
    let by_username = subjects(app.get("/api/admin/users?q=Seed17").await.json().await.expect("json"));
    assert_eq!(by_username, vec!["seed-17"]);
    let by_email = subjects(app.get("/api/admin/users?q=SEED23%40EXAMPLE").await.json().await.expect("json"));
    assert_eq!(by_email, vec!["seed-23"]);
    let none = subjects(app.get("/api/admin/users?q=%25%25%25").await.json().await.expect("json"));
    assert!(none.is_empty(), "`%` is matched literally, not as a wildcard");
    let html = app.get("/admin?q=seed2&view=active").await.text().await.expect("html");
    assert!(html.contains("Seed User 2<") && html.contains("Seed User 29") && !html.contains("Seed User 3<"));
}

/// A row that shares trigrams with the term ("d17" of "seed17") but not the whole term is not a
/// match: the trigram index only finds candidates, the `like` decides.
#[sqlx::test]
async fn a_search_matches_only_rows_with_the_whole_term(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    seed_users(&pool, 1, 60, 10).await;
    // "bad17" shares "d17" with "seed17" but not "see" or "eed".
    sqlx::query(
        "insert into users (issuer, subject, name, username, email, last_activity_at, sessions_expire_at)
         values ('seed', 'bad-17', 'Bad Seventeen', 'bad17', 'bad17@example.com', now(), now() + interval '1 day')",
    )
    .execute(&pool)
    .await
    .expect("seed");
    let found: Value = app.get("/api/admin/users?q=seed17").await.json().await.expect("json");
    let subjects: Vec<&str> =
        found["users"].as_array().expect("users").iter().filter_map(|u| u["subject"].as_str()).collect();
    assert_eq!(subjects, vec!["seed-17"]);
}

/// Searches whose matches are dense, sparse among recent users, or single return the same
/// pages as a plain reference query: the exact matches, newest activity first, each once.
#[sqlx::test]
async fn search_pages_are_exact_whichever_way_they_are_found(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    seed_users(&pool, 1, 3000, 10).await;
    // seed1: 1,111 matches (a page among the most recent); seed29: 111 matches, 11 of them
    // among the 1,000 most recent (a longer walk); seed2999: one match (ranked); no match.
    for term in ["seed1", "seed29", "Seed 2999", "seed2999@", "no-such-seed"] {
        let expected: Vec<String> = sqlx::query_scalar(
            "select subject from users where search_text like '%' || lower($1) || '%'
              order by last_activity_at desc, user_id desc",
        )
        .bind(term)
        .fetch_all(&pool)
        .await
        .expect("reference");
        let mut seen: Vec<String> = vec![];
        let mut cursor = String::new();
        loop {
            let page: Value = app
                .get(&format!("/api/admin/users?active=false&q={}&cursor={cursor}", term.replace(' ', "%20")))
                .await
                .json()
                .await
                .expect("json");
            seen.extend(
                page["users"]
                    .as_array()
                    .expect("users")
                    .iter()
                    .map(|u| u["subject"].as_str().expect("subject").to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, expected, "q={term}");
    }
}

#[sqlx::test]
async fn bad_queries_are_a_400(pool: PgPool) {
    let app = admin_app(pool).await;
    assert_eq!(app.get("/api/admin/users?cursor=garbage").await.status(), 400);
    assert_eq!(app.get("/admin?cursor=%FF%FE").await.status(), 400);
    let long = "a".repeat(101);
    assert_eq!(app.get(&format!("/api/admin/users?q={long}")).await.status(), 400);
    assert_eq!(app.get("/api/admin/users?active=maybe").await.status(), 400);
    assert_eq!(app.get("/admin/users/not-a-uuid").await.status(), 404);
    assert_eq!(app.get(&format!("/admin/users/{}", Uuid::new_v4())).await.status(), 404);
    // Lifecycle issue, item 12: a well-formed cursor whose time Postgres cannot represent.
    for micros in [i64::MAX, i64::MIN, -1] {
        let cursor = logto_signin::admin::cursor::Cursor { activity_micros: micros, user_id: Uuid::new_v4() }.encode();
        for path in [format!("/api/admin/users?cursor={cursor}"), format!("/admin?cursor={cursor}&view=all")] {
            assert_eq!(app.get(&path).await.status(), 400, "{path}");
        }
    }
}

#[sqlx::test]
async fn revoking_a_session_makes_its_cookie_anonymous(pool: PgPool) {
    let admin = admin_app(pool.clone()).await;
    let victim = spawn_app_with(pool.clone(), admin.op.clone(), &[]).await;
    victim.signed_in(&bob()).await;
    let (user_id, session_id): (Uuid, Uuid) = sqlx::query_as(
        "select s.user_id, s.session_id from sessions s join users u using (user_id) where u.subject = 'bob000000001'",
    )
    .fetch_one(&pool)
    .await
    .expect("bob's session");
    let html = admin.get(&format!("/admin/users/{user_id}")).await.text().await.expect("html");
    assert!(html.contains(&session_id.to_string()));
    let csrf = csrf_token_from_home(&admin).await.expect("csrf");

    let response = admin.post_form(&format!("/admin/sessions/{session_id}/revoke"), &[("csrf_token", "forged")]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(victim.me_status().await, 200, "a forged POST changes nothing");

    let response = admin.post_form(&format!("/admin/sessions/{session_id}/revoke"), &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("/admin/users/{user_id}"));
    assert_eq!(victim.me_status_soon(401).await, 401);
}

#[sqlx::test]
async fn signing_a_user_out_everywhere_ends_all_their_sessions(pool: PgPool) {
    let admin = admin_app(pool.clone()).await;
    let phone = spawn_app_with(pool.clone(), admin.op.clone(), &[]).await;
    phone.signed_in(&bob()).await;
    let laptop = spawn_app_with(pool.clone(), admin.op.clone(), &[]).await;
    laptop.signed_in(&bob()).await;
    let user_id: Uuid = sqlx::query_scalar("select user_id from users where subject = 'bob000000001'")
        .fetch_one(&pool)
        .await
        .expect("bob");
    let csrf = csrf_token_from_home(&admin).await.expect("csrf");
    let response = admin.post_form(&format!("/admin/users/{user_id}/sign-out-everywhere"), &[]).await;
    assert_eq!(response.status(), 400, "no token at all");
    assert_eq!(phone.me_status().await, 200);
    let response =
        admin.post_form(&format!("/admin/users/{user_id}/sign-out-everywhere"), &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(phone.me_status_soon(401).await, 401);
    assert_eq!(laptop.me_status_soon(401).await, 401);
    assert_eq!(admin.me_status().await, 200);
    let signed_in: Option<bool> = sqlx::query_scalar("select sessions_expire_at > now() from users where user_id = $1")
        .bind(user_id)
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_ne!(signed_in, Some(true), "bob is no longer counted as signed in");
}

#[sqlx::test]
async fn hostile_profiles_render_escaped_on_every_admin_view(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let evil = spawn_app_with(pool.clone(), app.op.clone(), &[]).await;
    let mut user = TestUser::hugging_face_user();
    user.claims.insert("name".into(), serde_json::json!("<script>alert(1)</script>"));
    user.claims.insert("email".into(), serde_json::json!("\"><svg onload=alert(2)>@x.io"));
    user.claims.insert("picture".into(), serde_json::json!("javascript:alert(3)"));
    user.userinfo_only["identities"]["huggingface"]["details"]["rawData"]["preferred_username"] =
        serde_json::json!("<img src=x onerror=alert(4)>");
    evil.signed_in(&user).await;
    let user_id: Uuid = sqlx::query_scalar("select user_id from users where subject = 'hfuser000001'")
        .fetch_one(&pool)
        .await
        .expect("row");
    for path in ["/admin".to_owned(), "/admin?view=all".to_owned(), format!("/admin/users/{user_id}")] {
        let html = app.get(&path).await.text().await.expect("html");
        for raw in ["<script>alert(1)", "<svg onload", "javascript:alert(3)", "<img src=x"] {
            assert!(!html.contains(raw), "{path}: {raw} rendered raw");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path}");
    }
}

// ADM-04: admin actions need a recent authentication, proven by `auth_time` after `max_age`.

async fn bob_signed_in_elsewhere(admin: &TestApp, pool: &PgPool) -> (TestApp, Uuid) {
    let victim = spawn_app_with(pool.clone(), admin.op.clone(), &[]).await;
    victim.signed_in(&bob()).await;
    let user_id: Uuid = sqlx::query_scalar("select user_id from users where subject = 'bob000000001'")
        .fetch_one(pool)
        .await
        .expect("bob");
    (victim, user_id)
}

async fn sign_out_everywhere(admin: &TestApp, user_id: Uuid) -> reqwest::Response {
    let csrf = csrf_token_from_home(admin).await.expect("csrf");
    admin.post_form(&format!("/admin/users/{user_id}/sign-out-everywhere"), &[("csrf_token", &csrf)]).await
}

#[sqlx::test]
async fn admin_actions_without_a_known_recent_sign_in_ask_for_a_step_up(pool: PgPool) {
    let admin = spawn_app(pool.clone()).await;
    admin.signed_in(&TestUser::alice()).await; // a plain sign-in: Logto sends no auth_time
    let (victim, user_id) = bob_signed_in_elsewhere(&admin, &pool).await;
    let html = admin.get(&format!("/admin/users/{user_id}")).await.text().await.expect("html");
    assert!(html.contains("id=\"step-up-notice\""), "the page offers the step-up first");

    let response = sign_out_everywhere(&admin, user_id).await;
    assert_eq!(response.status(), 403);
    let html = response.text().await.expect("html");
    assert!(html.contains("Confirm it&#x27;s you") || html.contains("Confirm it's you"), "{html}");
    let back = format!("/sign-in/step-up?return_to=%2Fadmin%2Fusers%2F{user_id}");
    assert!(html.contains(&back), "the step-up comes back to the user's page: {html}");
    assert_eq!(victim.me_status().await, 200, "nothing was revoked");

    // The step-up asks Logto for max_age and comes back where the admin was.
    let authorization_url = admin.begin_sign_in(&back).await;
    assert_eq!(query_param(&authorization_url, "max_age").as_deref(), Some("1800"));
    let response = admin.return_from_provider(&authorization_url, &TestUser::alice()).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("/admin/users/{user_id}"));
    let html = admin.get(&format!("/admin/users/{user_id}")).await.text().await.expect("html");
    assert!(!html.contains("id=\"step-up-notice\""));
    assert_eq!(sign_out_everywhere(&admin, user_id).await.status(), 303);
    assert_eq!(victim.me_status_soon(401).await, 401);
}

#[sqlx::test]
async fn a_step_up_whose_id_token_lacks_auth_time_is_refused(pool: PgPool) {
    let admin = spawn_app(pool.clone()).await;
    admin.signed_in(&TestUser::alice()).await;
    admin.op.set(|b| b.auth_time = AuthTime::Omit);
    let authorization_url = admin.begin_sign_in("/sign-in/step-up?return_to=/admin").await;
    let response = admin.return_from_provider(&authorization_url, &TestUser::alice()).await;
    assert_eq!(response.status(), 400, "max_age was sent, so auth_time is required");
    let (victim, user_id) = bob_signed_in_elsewhere(&admin, &pool).await;
    assert_eq!(sign_out_everywhere(&admin, user_id).await.status(), 403);
    assert_eq!(victim.me_status().await, 200);
}

#[sqlx::test]
async fn a_step_up_with_an_old_auth_time_is_refused(pool: PgPool) {
    let admin = spawn_app(pool.clone()).await;
    admin.op.set(|b| b.auth_time = AuthTime::Offset(-2 * 3600));
    let authorization_url = admin.begin_sign_in("/sign-in/step-up?return_to=/admin").await;
    let response = admin.return_from_provider(&authorization_url, &TestUser::alice()).await;
    assert_eq!(response.status(), 400, "an authentication two hours old does not satisfy max_age=1800");
    assert_eq!(admin.me_status().await, 401);
}

#[sqlx::test]
async fn an_auth_time_in_the_future_is_refused_on_any_sign_in(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.op.set(|b| b.auth_time = AuthTime::Offset(3600));
    assert_eq!(app.sign_in_as(&TestUser::alice()).await.status(), 400);
    assert_eq!(app.me_status().await, 401);
}

#[sqlx::test]
async fn an_old_auth_time_from_a_plain_sign_in_still_needs_a_step_up(pool: PgPool) {
    // Without max_age any auth_time is fine for signing in, but not for admin actions.
    let admin = spawn_app(pool.clone()).await;
    admin.op.set(|b| b.auth_time = AuthTime::Offset(-2 * 3600));
    admin.signed_in(&TestUser::alice()).await;
    let (victim, user_id) = bob_signed_in_elsewhere(&admin, &pool).await;
    assert_eq!(sign_out_everywhere(&admin, user_id).await.status(), 403);
    assert_eq!(victim.me_status().await, 200);
}

#[sqlx::test]
async fn a_step_up_expires_after_admin_max_auth_age(pool: PgPool) {
    let op = FakeOp::start().await;
    let admin = spawn_app_with(pool.clone(), op, &[("ADMIN_MAX_AUTH_AGE", "2")]).await;
    let authorization_url = admin.stepped_up(&TestUser::alice()).await;
    assert_eq!(query_param(&authorization_url, "max_age").as_deref(), Some("2"));
    let (victim, user_id) = bob_signed_in_elsewhere(&admin, &pool).await;
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(sign_out_everywhere(&admin, user_id).await.status(), 403, "the step-up is 3 s old, the limit 2 s");
    assert_eq!(victim.me_status().await, 200);
    admin.stepped_up(&TestUser::alice()).await;
    assert_eq!(sign_out_everywhere(&admin, user_id).await.status(), 303);
    assert_eq!(victim.me_status_soon(401).await, 401);
}

/// Lifecycle issue, item 8: a role removed at Logto stops counting within
/// `SESSION_REVALIDATE_AFTER`, without a new sign-in: an admin request on an older session
/// revalidates it first (a refresh grant whose verified ID token brings the current roles).
#[sqlx::test]
async fn a_role_removed_at_logto_stops_counting_within_the_revalidation_bound(pool: PgPool) {
    let app = spawn_app_with(pool, FakeOp::start().await, &[("SESSION_REVALIDATE_AFTER", "2")]).await;
    app.signed_in(&TestUser::alice()).await;
    assert_eq!(app.get("/admin").await.status(), 200);
    let grants = app.op.counters().refresh_grants;
    let mut demoted = TestUser::alice();
    demoted.claims.insert("roles".into(), serde_json::json!(["viewer"]));
    app.op.replace_user_in_grants(&demoted);
    assert_eq!(app.get("/admin").await.status(), 200, "within the bound the checked roles stand");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(app.get("/admin").await.status(), 403);
    assert_eq!(app.get("/api/admin/users").await.status(), 403);
    assert!(app.op.counters().refresh_grants > grants, "revalidated at Logto");
    assert_eq!(app.me_status().await, 200, "still signed in, just not an admin");
}

/// Lifecycle issue, item 8: a user Logto no longer honours (suspended, deleted: the grant is
/// gone) loses their sessions in the background, without visiting an admin page.
#[sqlx::test]
async fn a_session_logto_no_longer_honours_ends_in_the_background(pool: PgPool) {
    let app = spawn_app_with(pool, FakeOp::start().await, &[("SESSION_REVALIDATE_AFTER", "1")]).await;
    app.signed_in(&TestUser::named("bob0000000001", "Bob")).await;
    assert_eq!(app.me_status().await, 200);
    app.op.set(|b| b.refresh_invalid_grant = true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    while app.me_status().await == 200 {
        assert!(std::time::Instant::now() < deadline, "the session outlived the revalidation bound");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.me_status().await, 401);
    assert_eq!(app.count("select count(*) from sessions where user_id is not null").await, 0);
}

/// An outage during revalidation keeps the session (and answers the admin request 503).
#[sqlx::test]
async fn an_outage_during_revalidation_keeps_the_session(pool: PgPool) {
    let app = spawn_app_with(pool, FakeOp::start().await, &[("SESSION_REVALIDATE_AFTER", "1")]).await;
    app.signed_in(&TestUser::alice()).await;
    app.op.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/admin").await.status(), 503);
    assert_eq!(app.me_status().await, 200);
}

/// Lifecycle issue, item 5: a second user signing in in the same browser starts from a clean
/// session. Admin A stepped up (recent `auth_time`, Logto `sid` A); admin B signs in there with a
/// plain sign-in: B must step up for an admin action, and B's session carries B's `sid` only
/// (A's back-channel logout must not end it).
#[sqlx::test]
async fn a_second_user_in_the_same_browser_inherits_nothing_from_the_first(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), FakeOp::start().await, &[("ADMIN_SUBJECTS", "carol0000001")]).await;
    app.stepped_up(&TestUser::alice()).await;
    let (_victim, victim_id) = bob_signed_in_elsewhere(&app, &pool).await;
    let mut carol = TestUser::named("carol0000001", "Carol");
    carol.sid = Some("sid-carol-1".into());
    app.signed_in(&carol).await; // same cookie jar: the browser Alice used
    let sids: Vec<Option<String>> = sqlx::query_scalar(
        "select s.logto_sid from sessions s join users u using (user_id) where u.subject = 'carol0000001'",
    )
    .fetch_all(&pool)
    .await
    .expect("carol's session");
    assert_eq!(sids, vec![Some("sid-carol-1".to_owned())]);
    assert_eq!(sign_out_everywhere(&app, victim_id).await.status(), 403, "Carol has not stepped up");

    // Without a sid of her own, Carol's session has none (not Alice's).
    let mut dave = TestUser::named("carol0000001", "Carol");
    dave.sid = None;
    app.signed_in(&dave).await;
    let sids: Vec<Option<String>> = sqlx::query_scalar(
        "select s.logto_sid from sessions s join users u using (user_id) where u.subject = 'carol0000001'",
    )
    .fetch_all(&pool)
    .await
    .expect("carol's session");
    assert_eq!(sids, vec![None]);
}

/// Lifecycle issue, item 13: a search needs 3 characters (the trigram index cannot help below
/// that), and the term is folded by Postgres `lower()`, like the stored search text, not by Rust
/// (they differ on a final Σ, on İ).
#[sqlx::test]
async fn search_terms_need_three_characters_and_fold_like_the_stored_text(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    for short in ["a", "ab", "%20ab%20"] {
        assert_eq!(app.get(&format!("/api/admin/users?q={short}")).await.status(), 400, "{short}");
    }
    let other = spawn_app_with(pool, app.op.clone(), &[]).await;
    other.signed_in(&TestUser::named("odysseus0001", "ΟΔΥΣΣΕΥΣ of Ithaca")).await;
    let found: Value = app
        .get("/api/admin/users?q=%CE%9F%CE%94%CE%A5%CE%A3%CE%A3%CE%95%CE%A5%CE%A3")
        .await
        .json()
        .await
        .expect("json");
    let subjects: Vec<&str> =
        found["users"].as_array().expect("users").iter().filter_map(|u| u["subject"].as_str()).collect();
    assert_eq!(subjects, vec!["odysseus0001"], "found by the name as written");
}

/// Lifecycle issue, item 9: two transactions ending one user's two sessions at once leave the
/// user's "signed in until" exact (the trigger locks the user row before it recomputes).
#[sqlx::test]
async fn concurrent_session_ends_keep_the_signed_in_state_exact(pool: PgPool) {
    let first = spawn_app(pool.clone()).await;
    first.signed_in(&TestUser::alice()).await;
    let second = spawn_app_with(pool.clone(), first.op.clone(), &[]).await;
    second.signed_in(&TestUser::alice()).await;
    let ids: Vec<Uuid> =
        sqlx::query_scalar("select session_id from sessions where user_id is not null order by created_at")
            .fetch_all(&pool)
            .await
            .expect("two sessions");
    assert_eq!(ids.len(), 2);
    let mut t1 = pool.begin().await.expect("t1");
    sqlx::query("delete from sessions where session_id = $1").bind(ids[0]).execute(&mut *t1).await.expect("delete 1");
    let other = pool.clone();
    let second_delete = tokio::spawn(async move {
        let mut t2 = other.begin().await.expect("t2");
        sqlx::query("delete from sessions where session_id = $1")
            .bind(ids[1])
            .execute(&mut *t2)
            .await
            .expect("delete 2");
        t2.commit().await.expect("commit 2");
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // t2 waits for the user row
    t1.commit().await.expect("commit 1");
    second_delete.await.expect("t2");
    let until: Option<time::OffsetDateTime> =
        sqlx::query_scalar("select sessions_expire_at from users where subject = 'alice0000001'")
            .fetch_one(&pool)
            .await
            .expect("alice");
    assert!(
        until.is_none_or(|t| t < time::OffsetDateTime::now_utc()),
        "no session left, yet signed in until {until:?}"
    );
}

/// Session-layer issue: a Logto identity with a Hugging Face id but no Hugging Face username is
/// shown the same way everywhere — the home page, the admin list and the admin user page.
#[sqlx::test]
async fn a_hugging_face_account_without_a_username_shows_the_same_everywhere(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let hugo_app = spawn_app_with(pool.clone(), app.op.clone(), &[]).await;
    let mut hugo = TestUser::hugging_face_user();
    hugo.userinfo_only = crate::fake_op::obj(serde_json::json!({"identities": {"huggingface": {
        "userId": "hf-1234567", "details": {"id": "hf-1234567"}}}}));
    hugo_app.signed_in(&hugo).await;
    let home = hugo_app.get("/").await.text().await.expect("html");
    assert!(home.contains(r#"<strong id="hf-username">hf-1234567</strong>"#), "{home}");
    let user_id: Uuid = sqlx::query_scalar("select user_id from users where subject = 'hfuser000001'")
        .fetch_one(&pool)
        .await
        .expect("row");
    for path in ["/admin".to_owned(), format!("/admin/users/{user_id}")] {
        let html = app.get(&path).await.text().await.expect("html");
        assert!(html.contains("hf-1234567"), "{path} shows the linked account");
    }
}

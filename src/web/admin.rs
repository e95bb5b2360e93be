//! The admin pages and their JSON twin. Every handler takes `AdminUser`: the check runs on the
//! server for each page, action and API call.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::cursor::Cursor;
use crate::admin::repo::{self, PAGE_SIZE, UserRow};
use crate::admin::{repo::Counts, require_recent_sign_in, signed_in_recently};
use crate::error::{AppError, Result};
use crate::lifecycle::end::{Outcome, Which, end};
use crate::session::repo as sessions;
use crate::users::{display_name, hugging_face_account, safe_image_url};
use crate::web::account::format_time;
use crate::web::extract::CurrentSession;
use crate::web::extract::{AdminUser, CsrfForm, CsrfOnly};
use crate::web::state::AppState;

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
    /// Pages: `view=all` for every known user (default: signed-in users).
    view: Option<String>,
    /// JSON: `active=false` for every known user (default: true).
    active: Option<bool>,
}

struct Listing {
    active_only: bool,
    search: Option<String>,
    rows: Vec<UserRow>,
    next_cursor: Option<String>,
}

async fn list(state: &AppState, active_only: bool, q: Option<&str>, cursor: Option<&str>) -> Result<Listing> {
    let search = q.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(s) = &search
        && (!(3..=100).contains(&s.chars().count()) || s.chars().any(char::is_control))
    {
        return Err(AppError::BadRequest("The search term must be 3 to 100 characters of text.".into()));
    }
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| AppError::BadRequest("The page cursor is not valid.".into()))?),
    };
    let mut rows = repo::list_users(&state.pool, active_only, search.as_deref(), cursor).await?;
    let next_cursor = if rows.len() as i64 > PAGE_SIZE {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|r| {
            Cursor {
                activity_micros: i64::try_from(r.last_activity_at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX),
                user_id: r.user_id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(Listing { active_only, search, rows, next_cursor })
}

#[derive(Serialize)]
struct UserItem {
    id: Uuid,
    display_name: String,
    username: Option<String>,
    email: Option<String>,
    avatar_url: Option<String>,
    hugging_face: Option<String>,
    roles: Vec<String>,
    first_seen: String,
    last_sign_in: String,
    last_activity: String,
    active_sessions: i64,
}

fn item(r: UserRow) -> UserItem {
    UserItem {
        id: r.user_id,
        display_name: display_name(r.name.as_deref(), r.username.as_deref(), r.email.as_deref())
            .unwrap_or_else(|| r.subject.clone()),
        username: r.username,
        email: r.email,
        avatar_url: safe_image_url(r.picture.as_deref()),
        hugging_face: hugging_face_account(r.hf_username.as_deref(), r.hf_user_id.as_deref()).map(str::to_owned),
        roles: r.roles,
        first_seen: format_time(r.first_seen_at),
        last_sign_in: format_time(r.last_sign_in_at),
        last_activity: format_time(r.last_activity_at),
        active_sessions: r.active_sessions,
    }
}

#[derive(Serialize)]
struct UsersPage {
    counts: Counts,
    counts_age_secs: u64,
    view: &'static str,
    q: String,
    users: Vec<UserItem>,
    next_url: Option<String>,
    first_url: Option<String>,
}

pub async fn users_page(
    state: web::Data<AppState>,
    admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let active_only = query.view.as_deref() != Some("all");
    let listing = list(&state, active_only, query.q.as_deref(), query.cursor.as_deref()).await?;
    let (counts, age) = state.admin_counts.get(&state.pool).await?;
    let view = if active_only { "active" } else { "all" };
    let link = |cursor: Option<&str>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.append_pair("view", view);
        if let Some(q) = &listing.search {
            s.append_pair("q", q);
        }
        if let Some(c) = cursor {
            s.append_pair("cursor", c);
        }
        format!("/admin?{}", s.finish())
    };
    let page = UsersPage {
        counts,
        counts_age_secs: age.as_secs(),
        view,
        q: listing.search.clone().unwrap_or_default(),
        next_url: listing.next_cursor.as_deref().map(|c| link(Some(c))),
        first_url: query.cursor.as_ref().map(|_| link(None)),
        users: listing.rows.into_iter().map(item).collect(),
    };
    tracing::debug!(admin = %admin.0.user_id, "admin users page");
    super::page(&state, "admin/users.html", &page)
}

#[derive(Serialize)]
struct UsersJson {
    users: Vec<UserRow>,
    next_cursor: Option<String>,
    active: bool,
}

pub async fn users_json(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let listing = list(&state, query.active.unwrap_or(true), query.q.as_deref(), query.cursor.as_deref()).await?;
    Ok(HttpResponse::Ok().json(UsersJson {
        users: listing.rows,
        next_cursor: listing.next_cursor,
        active: listing.active_only,
    }))
}

#[derive(Serialize)]
struct SessionItem {
    id: Uuid,
    created: String,
    last_seen: String,
    expires: String,
    user_agent: String,
    ip: String,
    has_logto_sid: bool,
}

#[derive(Serialize)]
struct UserPage {
    id: Uuid,
    display_name: String,
    subject: String,
    username: Option<String>,
    email: Option<String>,
    email_verified: bool,
    avatar_url: Option<String>,
    roles: Vec<String>,
    hugging_face: Option<String>,
    hf_avatar_url: Option<String>,
    first_seen: String,
    last_sign_in: String,
    last_activity: String,
    sign_in_count: i64,
    sessions: Vec<SessionItem>,
    csrf_token: String,
    /// The admin's sign-in is too old for actions: the page offers a step-up first.
    step_up_needed: bool,
}

pub async fn user_page(
    state: web::Data<AppState>,
    _admin: AdminUser,
    CurrentSession(session): CurrentSession,
    path: web::Path<Uuid>,
) -> Result<HttpResponse> {
    let user_id = path.into_inner();
    let u = repo::user(&state.pool, user_id).await?.ok_or(AppError::NotFound)?;
    let list = sessions::list_for_user(&state.pool, user_id).await?;
    let page = UserPage {
        id: u.user_id,
        display_name: display_name(u.name.as_deref(), u.username.as_deref(), u.email.as_deref())
            .unwrap_or_else(|| u.subject.clone()),
        subject: u.subject,
        username: u.username,
        email: u.email,
        email_verified: u.email_verified,
        avatar_url: safe_image_url(u.picture.as_deref()),
        roles: u.roles,
        hugging_face: hugging_face_account(u.hf_username.as_deref(), u.hf_user_id.as_deref()).map(str::to_owned),
        hf_avatar_url: safe_image_url(u.hf_avatar.as_deref()),
        first_seen: format_time(u.first_seen_at),
        last_sign_in: format_time(u.last_sign_in_at),
        last_activity: format_time(u.last_activity_at),
        sign_in_count: u.sign_in_count,
        sessions: list
            .into_iter()
            .map(|s| SessionItem {
                id: s.session_id,
                created: format_time(s.created_at),
                last_seen: format_time(s.last_seen_at),
                expires: format_time(s.expires_at),
                user_agent: s.user_agent.unwrap_or_default(),
                ip: s.client_ip.unwrap_or_default(),
                has_logto_sid: s.has_logto_sid,
            })
            .collect(),
        step_up_needed: !signed_in_recently(&session, &state.settings),
        csrf_token: session.csrf_token.clone().unwrap_or_default(),
    };
    super::page(&state, "admin/user.html", &page)
}

pub async fn revoke_session(
    state: web::Data<AppState>,
    admin: AdminUser,
    path: web::Path<Uuid>,
    CsrfForm { session, .. }: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse> {
    require_recent_sign_in(&session, &state.settings, "/admin")?;
    let session_id = path.into_inner();
    let Outcome::Ended(ended) = end(&state.services, Which::Session(session_id)).await? else {
        return Err(AppError::NotFound);
    };
    let Some(revoked) = ended.first() else {
        return Err(AppError::NotFound);
    };
    tracing::info!(admin = %admin.0.user_id, target_user = ?revoked.user_id, %session_id, "admin revoked a session");
    Ok(back_to(revoked.user_id))
}

pub async fn sign_out_everywhere(
    state: web::Data<AppState>,
    admin: AdminUser,
    path: web::Path<Uuid>,
    CsrfForm { session, .. }: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse> {
    let user_id = path.into_inner();
    require_recent_sign_in(&session, &state.settings, &format!("/admin/users/{user_id}"))?;
    let ended = end(&state.services, Which::AllOfUser(user_id)).await?;
    tracing::info!(admin = %admin.0.user_id, target_user = %user_id, sessions = ended.count(), "admin signed a user out everywhere");
    Ok(back_to(Some(user_id)))
}

fn back_to(user_id: Option<Uuid>) -> HttpResponse {
    let location = user_id.map_or_else(|| "/admin".to_owned(), |id| format!("/admin/users/{id}"));
    super::see_other(&location)
}

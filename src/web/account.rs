//! The signed-in user's own sessions: see them, sign out others.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{AppError, Result};
use crate::lifecycle::end::{Which, end};
use crate::session::repo::{self as sessions, SessionInfo};
use crate::web::extract::{CsrfForm, CsrfOnly, CurrentSession, CurrentUser};
use crate::web::state::AppState;

#[derive(Serialize)]
struct SessionRow {
    id: Uuid,
    current: bool,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    device: String,
    ip: String,
}

#[derive(Serialize)]
struct SessionsPage {
    sessions: Vec<SessionRow>,
    others: usize,
    csrf_token: String,
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

fn row(s: SessionInfo, current: Uuid) -> SessionRow {
    SessionRow {
        id: s.session_id,
        current: s.session_id == current,
        created_at: format_time(s.created_at),
        last_seen_at: format_time(s.last_seen_at),
        expires_at: format_time(s.expires_at),
        device: s.user_agent.unwrap_or_else(|| "Unknown device".into()),
        ip: s.client_ip.unwrap_or_default(),
    }
}

pub async fn sessions_page(
    state: web::Data<AppState>,
    _user: CurrentUser,
    CurrentSession(me): CurrentSession,
) -> Result<HttpResponse> {
    let list = sessions::list_for_user(&state.pool, me.user_id).await?;
    let rows: Vec<SessionRow> = list.into_iter().map(|s| row(s, me.session_id)).collect();
    let page = SessionsPage {
        others: rows.iter().filter(|r| !r.current).count(),
        sessions: rows,
        csrf_token: me.csrf_token.clone().unwrap_or_default(),
    };
    super::page(&state, "account_sessions.html", &page)
}

/// Signs out one of the user's other sessions.
pub async fn sign_out_session(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    CsrfForm { session: me, .. }: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse> {
    let target = path.into_inner();
    if target == me.session_id {
        return Err(AppError::BadRequest("Use Sign out to end this session.".into()));
    }
    let which = Which::OneOfUser { user_id: me.user_id, session_id: target };
    if end(&state.services, which).await?.count() == 0 {
        return Err(AppError::NotFound);
    }
    tracing::info!(user_id = %me.user_id, session_id = %target, "user signed out one of their sessions");
    Ok(back())
}

/// Signs out every session of the user but this one.
pub async fn sign_out_others(
    state: web::Data<AppState>,
    CsrfForm { session: me, .. }: CsrfForm<CsrfOnly>,
) -> Result<HttpResponse> {
    let ended = end(&state.services, Which::AllOfUserBut { user_id: me.user_id, keep: me.session_id }).await?;
    tracing::info!(user_id = %me.user_id, count = ended.count(), "user signed out their other sessions");
    Ok(back())
}

fn back() -> HttpResponse {
    super::see_other("/account/sessions")
}

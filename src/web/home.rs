//! The home page: who you are, or the sign-in buttons.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::error::Result;
use crate::users::{User, display_name, safe_image_url};
use crate::web::extract::{CurrentSession, CurrentUser};
use crate::web::state::AppState;

/// What the page shows of a user; image URLs are `https:` only.
#[derive(Serialize)]
pub struct UserView {
    display_name: String,
    username: Option<String>,
    email: Option<String>,
    email_verified: bool,
    avatar_url: Option<String>,
    hf_user_id: Option<String>,
    hf_username: Option<String>,
    hf_avatar_url: Option<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        let display_name = display_name(u.name.as_deref(), u.username.as_deref(), u.email.as_deref())
            .unwrap_or_else(|| "Signed-in user".to_owned());
        Self {
            display_name,
            username: u.username.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            avatar_url: safe_image_url(u.picture.as_deref()),
            hf_user_id: u.hf_user_id.clone(),
            hf_username: u.hf_username.clone(),
            hf_avatar_url: safe_image_url(u.hf_avatar.as_deref()),
        }
    }
}

#[derive(Serialize)]
struct HomePage {
    user: Option<UserView>,
    is_admin: bool,
    csrf_token: Option<String>,
}

pub async fn home(
    state: web::Data<AppState>,
    user: Option<CurrentUser>,
    session: Option<CurrentSession>,
) -> Result<HttpResponse> {
    let page = HomePage {
        user: user.as_ref().map(|u| UserView::from(u.0.as_ref())),
        is_admin: user.as_ref().is_some_and(|u| crate::admin::is_admin(&u.0, &state.settings)),
        csrf_token: session.and_then(|s| s.0.csrf_token),
    };
    super::page(&state, "home.html", &page)
}

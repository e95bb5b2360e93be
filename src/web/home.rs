//! The home page: who you are, or the sign-in buttons.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::error::Result;
use crate::users::{Profile, safe_image_url};
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
    /// The linked Hugging Face account (username, else id), as every page shows it.
    hugging_face: Option<String>,
    hf_avatar_url: Option<String>,
}

impl From<&Profile> for UserView {
    fn from(p: &Profile) -> Self {
        Self {
            display_name: p.display_name().unwrap_or("Signed-in user").to_owned(),
            username: p.username.clone(),
            email: p.email.clone(),
            email_verified: p.email_verified,
            avatar_url: safe_image_url(p.picture.as_deref()),
            hugging_face: p.hugging_face_account().map(str::to_owned),
            hf_avatar_url: safe_image_url(p.hf_avatar.as_deref()),
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
        user: user.as_ref().map(|u| UserView::from(&u.0.profile)),
        is_admin: user.as_ref().is_some_and(|u| crate::admin::is_admin(&u.0, &state.settings)),
        csrf_token: session.and_then(|s| s.0.csrf_token.clone()),
    };
    super::page(&state, "home.html", &page)
}

//! The real-Logto tier: the app against a real Logto 1.42 (built from its public source by
//! `../shared/logto`, or any Logto given by environment), headless Chromium on Logto's own
//! hosted sign-in pages, and everything each scenario needs provisioned through Logto's
//! Management API. Each scenario uses its own Logto application, users, roles and resources,
//! so scenarios do not interfere.
//!
//! Needs `LOGTO_ENDPOINT`, `LOGTO_M2M_ID`, `LOGTO_M2M_SECRET` (as `bootstrap.sh` prints them),
//! `DATABASE_URL`, chromium + chromedriver. See README, "Tests against real Logto".

#[path = "../common/browser.rs"]
mod browser;
mod management;
mod stack;

use std::sync::LazyLock;

use anyhow::ensure;
use browser::*;
use management::{LogtoEnv, Management};
use sqlx::PgPool;
use stack::*;

static LOGTO: LazyLock<Management> = LazyLock::new(|| Management::new(LogtoEnv::from_env()));

#[sqlx::test]
async fn password_sign_in_through_logtos_hosted_page_shows_the_profile(pool: PgPool) {
    let logto = &*LOGTO;
    let app = TestApp::start(logto, pool, AppOptions::default()).await.expect("app");
    let (username, user_id) = new_user(logto, "Ada Lovelace").await.expect("user");
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser().await.expect("browser");
    scenario("logto_password_sign_in", &browser, || async {
        app.sign_in(&browser, &username).await?;
        ensure!(text_of(&browser, "#display-name").await? == "Ada Lovelace");
        let me = app.me(&browser).await?;
        ensure!(me["sub"] == user_id.as_str() && me["username"] == username.as_str(), "{me}");
        Ok(())
    })
    .await;
    browser.close().await.ok();
}

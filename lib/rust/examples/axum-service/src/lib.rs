//! An axum service that authenticates with [Torii](https://crates.io/crates/torii)
//! 0.5.3 and keeps everything in toriid through `torii-storage-toriid`:
//! sign up, log in with a password (a session cookie), a protected route
//! that checks the cookie, log out.
//!
//! | route | form | answer |
//! | --- | --- | --- |
//! | `POST /signup` | `email`, `password` | 201 and the user id; 409 when the email is taken |
//! | `POST /login` | `email`, `password` | 200 and `Set-Cookie: session=…; HttpOnly`; 401 on a wrong password |
//! | `GET /me` | — | 200 `hello EMAIL` with a valid session cookie, else 401 |
//! | `POST /logout` | — | 204, the session deleted and the cookie cleared |
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = torii_axum_example::app(torii_axum_example::connect("tcp://127.0.0.1:7420")?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use torii::{SessionToken, Torii};
use torii_storage_toriid::ToriidRepositoryProvider;

/// The Torii instance the handlers share.
pub type Auth = Arc<Torii<ToriidRepositoryProvider>>;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "session";

/// Torii on toriid at `endpoint`.
pub fn connect(endpoint: &str) -> Result<Auth, toriid_client::Error> {
    let provider = ToriidRepositoryProvider::connect(toriid_client::Config::new([endpoint]))?;
    Ok(Arc::new(Torii::new(Arc::new(provider))))
}

/// The service's routes.
pub fn app(auth: Auth) -> Router {
    Router::new()
        .route("/signup", post(signup))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .with_state(auth)
}

/// The sign-up and login form.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    /// The email.
    pub email: String,
    /// The password.
    pub password: String,
}

async fn signup(State(auth): State<Auth>, Form(c): Form<Credentials>) -> Response {
    match auth.password().register(&c.email, &c.password).await {
        Ok(user) => (StatusCode::CREATED, user.id.to_string()).into_response(),
        // Torii reports a taken email as an auth error; the storage's own
        // failures are 500. No detail goes back to the caller.
        Err(torii::ToriiError::AuthError(_)) => StatusCode::CONFLICT.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn login(State(auth): State<Auth>, Form(c): Form<Credentials>) -> Response {
    match auth
        .password()
        .authenticate(&c.email, &c.password, None, None)
        .await
    {
        Ok((_, session)) => {
            let cookie = format!(
                "{COOKIE_NAME}={}; HttpOnly; SameSite=Lax; Path=/",
                session.token.as_str()
            );
            (StatusCode::OK, [(SET_COOKIE, cookie)], "logged in").into_response()
        }
        Err(torii::ToriiError::AuthError(_)) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The session token of the request's cookie, if any.
fn session_token(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| SessionToken::new(v))
}

async fn me(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let Some(token) = session_token(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Ok(session) = auth.get_session(&token).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match auth.get_user(&session.user_id).await {
        Ok(Some(user)) => (StatusCode::OK, format!("hello {}", user.email)).into_response(),
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        if auth.delete_session(&token).await.is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let clear = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    (StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response()
}

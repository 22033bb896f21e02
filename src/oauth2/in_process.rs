//! The grants portero asks of its own issuer in process: a route that
//! signs people in there (`login`) redeems its callback's code and
//! refreshes a session's tokens without an HTTP request, since the
//! issuer's `public_url` need not be reachable from portero itself. The
//! same grant functions as the token endpoint's, with the same checks;
//! only client authentication differs (`client::named`). Each grant is
//! counted as a token-endpoint request.

use http::StatusCode;

use super::client;
use super::code::{self, CodeGrant};
use super::mint::Issued;
use super::token::{self, Grant, RefreshGrant};
use super::{count, Endpoints, Error, Which};
use crate::identity::{Reason, MAX_FIELD_LEN};

/// A grant portero asks of its own issuer.
#[derive(Clone, Copy)]
pub enum InProcessGrant<'a> {
    AuthorizationCode(CodeGrant<'a>),
    RefreshToken(RefreshGrant<'a>),
}

/// The tokens `grant` gives portero's login client `client_id` at `now`,
/// or the RFC 6749 §5.2 error the token endpoint would have answered.
pub async fn grant_in_process(
    ctx: &Endpoints<'_>,
    client_id: &str,
    grant: InProcessGrant<'_>,
    now: i64,
) -> Result<Issued, Error> {
    let issued = async {
        let client = client::named(ctx, client_id)?;
        match grant {
            InProcessGrant::AuthorizationCode(asked) => {
                token::permitted(ctx, &client, Grant::AuthorizationCode)?;
                required("code", asked.code)?;
                required("redirect_uri", asked.redirect_uri)?;
                required("code_verifier", asked.code_verifier)?;
                code::redeem(ctx, now, &asked, &client).await
            }
            InProcessGrant::RefreshToken(asked) => {
                token::permitted(ctx, &client, Grant::RefreshToken)?;
                required("refresh_token", asked.refresh_token)?;
                token::refresh_grant(ctx, now, &asked, &client).await
            }
        }
    }
    .await;
    // Counted as `handle` counts the token endpoint's answers.
    let (status, reason) = match &issued {
        Ok(_) => (
            StatusCode::OK,
            ctx.issuer.logins.noted().unwrap_or(Reason::Ok),
        ),
        Err(e) => (
            e.status,
            ctx.issuer.logins.noted().unwrap_or_else(|| e.reason()),
        ),
    };
    count(ctx, Which::Token, status, reason);
    issued
}

/// A parameter the grant cannot do without, refused as the token
/// endpoint's form refuses it (`form.rs`): too long, or empty, which is
/// as if it were not sent (RFC 6749 §3.1).
fn required(name: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_FIELD_LEN * 8 {
        return Err(Error::invalid_request(format!("{name} is too long")));
    }
    if value.is_empty() {
        return Err(Error::invalid_request(format!("{name} is missing")));
    }
    Ok(())
}

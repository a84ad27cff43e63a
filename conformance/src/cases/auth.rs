//! Identity (semantics.md §5; spec "CONNECT" `login`/`passcode`). Cases that need configured
//! users take them from `--user` (or `--login`/`--passcode`).

use herald_protocol::Command;

use super::{PASS, send_expect_error};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need, Verdict};
use crate::wire::Out;
use crate::{case, ensure};

const AUTH_USER: &[Need] = &[Need::Authentication, Need::Users(1)];
const AUTH: &[Need] = &[Need::Authentication];

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "auth.valid_credentials_accepted",
            ["auth", "connect"],
            valid_credentials_accepted
        )
        .needs(AUTH_USER),
        case!(
            "auth.wrong_passcode_refused",
            ["auth", "connect", "error"],
            wrong_passcode_refused
        )
        .needs(AUTH_USER),
        case!(
            "auth.unknown_login_refused",
            ["auth", "connect", "error"],
            unknown_login_refused
        )
        .needs(AUTH),
        case!(
            "auth.connected_user_name",
            ["auth", "connect", "herald"],
            connected_user_name
        )
        .needs(AUTH_USER),
        case!(
            "auth.anonymous_from_loopback",
            ["auth", "connect", "herald"],
            anonymous_from_loopback
        ),
    ]
}

fn connect_as(ctx: &Ctx, login: &str, passcode: &str) -> Out {
    Out::new("CONNECT")
        .h("accept-version", "1.2")
        .h("host", &ctx.opts.host)
        .h("login", login)
        .h("passcode", passcode)
}

/// A configured user's credentials are accepted.
async fn valid_credentials_accepted(ctx: Ctx) -> CaseResult {
    ctx.connect_user(0).await?;
    PASS
}

/// semantics.md §5: a wrong passcode is ERROR + close.
async fn wrong_passcode_refused(ctx: Ctx) -> CaseResult {
    let (name, password) = ctx.user(0)?;
    let mut conn = ctx.open().await?;
    let frame = connect_as(&ctx, &name, &format!("{password}-wrong"));
    send_expect_error(&ctx, &mut conn, &frame.bytes()).await?;
    PASS
}

/// An unknown login is ERROR + close.
async fn unknown_login_refused(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.open().await?;
    let frame = connect_as(&ctx, &ctx.unique("nobody"), "secret");
    send_expect_error(&ctx, &mut conn, &frame.bytes()).await?;
    PASS
}

/// semantics.md §1: CONNECTED carries `user-name` for an authenticated session.
async fn connected_user_name(ctx: Ctx) -> CaseResult {
    let (name, _) = ctx.user(0)?;
    let conn = ctx.connect_user(0).await?;
    let connected = conn.connected.as_ref().ok_or("no CONNECTED recorded")?;
    ensure!(
        connected.header("user-name") == Some(name.as_str()),
        "CONNECTED user-name {:?}, expected {name:?}",
        connected.header("user-name")
    );
    PASS
}

/// semantics.md §5: anonymous access is on by default for loopback connections.
async fn anonymous_from_loopback(ctx: Ctx) -> CaseResult {
    let host = ctx.target.authority.rsplit_once(':').map_or("", |(h, _)| h);
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Ok(Verdict::Skip(format!("{host} is not a loopback address")));
    }
    let mut conn = ctx.open().await?;
    conn.send_out(&Out::new("CONNECT").h("accept-version", "1.2"))
        .await?;
    let connected = conn.expect(Command::Connected, ctx.wait()).await?;
    ensure!(
        connected.header("user-name").is_none(),
        "anonymous CONNECTED carries user-name: {connected}"
    );
    PASS
}

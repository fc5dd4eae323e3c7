//! `ac-sandbox`: a local stand-in for ActiveCampaign (`contact_sync`), for runs without an account.
//! Usage: ac-sandbox [PORT]   (or AC_SANDBOX_PORT; key from AC_SANDBOX_API_KEY)

use ac_webhook_sync::sandbox::{self, DEFAULT_API_KEY, DEFAULT_PORT, Language, Sandbox};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AC_SANDBOX_PORT").ok());
    let port: u16 = port.and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PORT);
    let api_key = std::env::var("AC_SANDBOX_API_KEY").unwrap_or_else(|_| DEFAULT_API_KEY.into());
    let language = match std::env::var("AC_SANDBOX_LANGUAGE").as_deref() {
        Ok("pt") => Language::Portuguese,
        _ => Language::English,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ActiveCampaign stand-in listening on http://127.0.0.1:{port}");
    sandbox::serve(listener, Sandbox::new(api_key, language)).await
}

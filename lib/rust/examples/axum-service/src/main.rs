//! Runs the example service: `TORIID_ENDPOINT` (default
//! `tcp://127.0.0.1:7420`), listening on `LISTEN` (default `127.0.0.1:3000`).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        std::env::var("TORIID_ENDPOINT").unwrap_or_else(|_| "tcp://127.0.0.1:7420".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let auth = torii_axum_example::connect(&endpoint)?;
    auth.migrate().await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}, storage on {endpoint}");
    axum::serve(listener, torii_axum_example::app(auth)).await?;
    Ok(())
}

//! The floor for `scripts/coldstart.py`: a hello-world `lambda_http` function with the same
//! dependencies' runtime, tracing set-up and release profile as `webhook`, so the two can be
//! measured side by side (`cargo build --release --example hello_lambda`).

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(|_request: Request| async {
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(Body::Text("Hello, world!".into()))?,
        )
    }))
    .await
}

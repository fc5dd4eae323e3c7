//! Stand-ins for the APIs of senders whose webhooks carry only ids, so the local stack and the
//! demo can look one up with no network: BigCommerce's orders and their products, as its v2
//! API answers them (`X-Auth-Token` checked, 401 without it, 404 for an order it lacks), from
//! `local/sender-apis.json`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Sandbox;

const BUNDLED: &str = include_str!("../../local/sender-apis.json");

pub(crate) const BIGCOMMERCE_ORDER_PATH: &str = "/stores/{store}/v2/orders/{id}";
pub(crate) const BIGCOMMERCE_PRODUCTS_PATH: &str = "/stores/{store}/v2/orders/{id}/products";

fn data() -> Value {
    serde_json::from_str(BUNDLED).unwrap_or(Value::Null)
}

fn answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// BigCommerce's answer for a wrong or missing token, and for an unknown resource.
fn bigcommerce(headers: &HeaderMap, found: impl FnOnce(&Value) -> Option<Value>) -> Response {
    let data = data();
    let api = &data["bigcommerce"];
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    if token.is_none() || token != api["access_token"].as_str() {
        return answer(
            StatusCode::UNAUTHORIZED,
            &json!([{"status": 401, "message": "You have not been authenticated."}]),
        );
    }
    match found(api) {
        Some(value) => answer(StatusCode::OK, &value),
        None => answer(
            StatusCode::NOT_FOUND,
            &json!([{"status": 404, "message": "The requested resource was not found."}]),
        ),
    }
}

pub(crate) async fn bigcommerce_order(
    State(_): State<Sandbox>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    bigcommerce(&headers, |api| {
        api["stores"][&store]["orders"].get(&id).cloned()
    })
}

pub(crate) async fn bigcommerce_products(
    State(_): State<Sandbox>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    bigcommerce(&headers, |api| {
        api["stores"][&store]["products"].get(&id).cloned()
    })
}

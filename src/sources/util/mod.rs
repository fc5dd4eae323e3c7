//! What senders share, apart from the senders themselves: body decoding, projection of
//! large payloads, field recognition and signature primitives. No sender is also a library.

pub mod body;
pub mod fields;
pub mod projection;
pub mod signature;

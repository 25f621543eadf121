//! Access tokens (HS256 JWTs) from an API key and secret, for tests, examples and services
//! that hold their own keys. Made here with `hmac`/`sha2` rather than `livekit-api` or
//! `jsonwebtoken`, which bring `ring` (C and assembly) for one HMAC.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The video grant of a join token; `None` leaves a permission to the server's default.
#[derive(Debug, Clone)]
pub struct Grants {
  pub room: String,
  pub can_publish: bool,
  /// A participant that may subscribe gets the server's subscriber connection first
  /// (`subscriber_primary`); one that may not gets none.
  pub can_subscribe: bool,
  pub can_publish_data: bool,
}

impl Grants {
  /// A participant that joins `room` and publishes, and subscribes to nothing.
  pub fn publisher(room: &str) -> Self {
    Grants {
      room: room.to_string(),
      can_publish: true,
      can_subscribe: false,
      can_publish_data: true,
    }
  }

  /// A participant that joins `room`, publishes and may subscribe: the usual token.
  pub fn participant(room: &str) -> Self {
    Grants {
      can_subscribe: true,
      ..Self::publisher(room)
    }
  }
}

/// A signed join token for `identity`, valid for `ttl_s` seconds from now.
pub fn access_token(api_key: &str, api_secret: &str, identity: &str, grants: &Grants, ttl_s: u64) -> Result<String> {
  if api_key.is_empty() || api_secret.is_empty() || identity.is_empty() {
    return Err(Error::InvalidOption(
      "api key, secret and identity must not be empty".into(),
    ));
  }
  let now = std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map_err(|e| Error::InvalidOption(format!("system clock before 1970: {e}")))?
    .as_secs();
  let header = serde_json::json!({ "alg": "HS256", "typ": "JWT" });
  let claims = serde_json::json!({
    "iss": api_key,
    "sub": identity,
    "name": identity,
    "nbf": now.saturating_sub(10),
    "exp": now + ttl_s,
    "video": {
      "roomJoin": true,
      "room": grants.room,
      "canPublish": grants.can_publish,
      "canSubscribe": grants.can_subscribe,
      "canPublishData": grants.can_publish_data,
    },
  });
  let signing_input = format!(
    "{}.{}",
    URL_SAFE_NO_PAD.encode(header.to_string()),
    URL_SAFE_NO_PAD.encode(claims.to_string())
  );
  let mut mac =
    Hmac::<Sha256>::new_from_slice(api_secret.as_bytes()).map_err(|e| Error::InvalidOption(e.to_string()))?;
  mac.update(signing_input.as_bytes());
  let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
  Ok(format!("{signing_input}.{sig}"))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn token_is_a_verifiable_hs256_jwt_with_the_grant() {
    let t = access_token("devkey", "secret", "pub", &Grants::publisher("room1"), 600).unwrap();
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "devkey");
    assert_eq!(claims["sub"], "pub");
    assert_eq!(claims["video"]["room"], "room1");
    assert_eq!(claims["video"]["canPublish"], true);
    assert_eq!(claims["video"]["canSubscribe"], false);
    assert!(access_token("", "s", "i", &Grants::publisher("r"), 1).is_err());
  }
}

//! The guests' side of the check-in for the in-memory cloud: what a broker's
//! `set_server_status` endpoint would hand the controller.

use super::MemoryCloud;
use crate::controller::{Autoscaler, CheckinStatus};

/// The check-in token in a rendered startup script (the first JWT in it), if any.
pub fn token_in(script: &str) -> Option<&str> {
    let start = script.find("eyJ")?;
    let rest = &script[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Passes the check-ins that `cloud`'s guests make now on to `scaler` with the token alone, as
/// Kasm's `set_server_status?token=` does (the token is read from the rendered script). Returns
/// how many were accepted.
pub async fn deliver_checkins(scaler: &Autoscaler, cloud: &MemoryCloud) -> usize {
    let mut accepted = 0;
    for c in cloud.due_checkins() {
        if let Some(token) = token_in(c.startup_script.expose())
            && scaler
                .check_in_token(token, &CheckinStatus::running())
                .await
                .is_ok()
        {
            accepted += 1;
        }
    }
    accepted
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_token_in_a_script() {
        let script = "export T=${KASM_X:-eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln-_x}\necho";
        assert_eq!(
            super::token_in(script),
            Some("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln-_x")
        );
        assert_eq!(super::token_in("no token"), None);
    }
}

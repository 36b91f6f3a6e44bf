//! EC2's client-token rules for `RunInstances`, which moto does not enforce, kept by the test
//! proxy in a table of its own.
//!
//! From the EC2 API reference, "Ensuring idempotency":
//! - a client token is a case-sensitive string of up to 64 ASCII characters;
//! - a request repeated with the same client token and the same parameters succeeds without
//!   doing anything more, and gets the response of the request that succeeded (only the state
//!   of the instance may differ);
//! - the same client token with one or more other parameters fails with
//!   `IdempotentParameterMismatch` ("Arguments on this idempotent request are inconsistent with
//!   arguments used in previous request(s).");
//! - tokens are per Region: the same call with the same token in another Region launches
//!   another instance there;
//! - only a request that succeeded binds its token: one that failed (a `4xx`/`5xx` answer) can
//!   be repeated with the same token and other parameters.
//!
//! Nothing here comes from the code under test.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// The documented error code of a token reused with other parameters.
pub const MISMATCH_CODE: &str = "IdempotentParameterMismatch";
/// Its documented message.
pub const MISMATCH_MESSAGE: &str = "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).";
/// The longest client token EC2 accepts, in ASCII characters.
const MAX_TOKEN_LEN: usize = 64;

/// What the proxy remembers of a request that succeeded.
#[derive(Debug, Clone)]
struct First {
    /// Its parameters but the token, sorted (the order of form fields carries no meaning).
    parameters: Vec<(String, String)>,
    /// Its answer, as EC2 gave it.
    status: u16,
    body: Bytes,
}

/// The answer the table decides for a `RunInstances` request.
#[derive(Debug, Clone)]
pub enum Decision {
    /// No token, or a token not bound yet: send it to the emulator (and [`Table::bind`] a
    /// successful answer).
    Forward,
    /// The same token and parameters as a request that succeeded: its answer again.
    Repeat { status: u16, body: Bytes },
    /// Refused as EC2 refuses it, with this HTTP status, code and message.
    Refuse {
        status: u16,
        code: &'static str,
        message: String,
    },
}

/// Client tokens bound by successful `RunInstances` calls, per Region.
#[derive(Debug, Default)]
pub struct Table {
    bound: Mutex<HashMap<(String, String), First>>,
    /// How many requests were refused as mismatched.
    mismatches: Mutex<usize>,
    /// How many were answered from memory.
    repeats: Mutex<usize>,
}

/// The form fields of a body, percent-decoding left to neither side (both are the same SDK's).
fn fields(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The Region of a SigV4-signed request: the third part of the `Credential=` scope
/// (`AKID/date/region/service/aws4_request`).
pub fn region(authorization: &str) -> String {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|scope| scope.split('/').nth(2))
        .unwrap_or_default()
        .to_owned()
}

impl Table {
    /// Decides on a `RunInstances` request with `body`, signed for `region`.
    pub fn decide(&self, region: &str, body: &str) -> Decision {
        let mut parameters = fields(body);
        let Some(at) = parameters.iter().position(|(k, _)| k == "ClientToken") else {
            return Decision::Forward;
        };
        let (_, token) = parameters.remove(at);
        if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
            return Decision::Refuse {
                status: 400,
                code: "InvalidParameterValue",
                message: format!(
                    "Value ({token}) for parameter clientToken is invalid. It must be at most {MAX_TOKEN_LEN} ASCII characters."
                ),
            };
        }
        parameters.sort();
        let bound = self.bound.lock().unwrap();
        match bound.get(&(region.to_owned(), token)) {
            None => Decision::Forward,
            Some(first) if first.parameters == parameters => {
                *self.repeats.lock().unwrap() += 1;
                Decision::Repeat {
                    status: first.status,
                    body: first.body.clone(),
                }
            }
            Some(_) => {
                *self.mismatches.lock().unwrap() += 1;
                Decision::Refuse {
                    status: 400,
                    code: MISMATCH_CODE,
                    message: MISMATCH_MESSAGE.to_owned(),
                }
            }
        }
    }

    /// Remembers the answer to a forwarded request: a successful one binds its token.
    pub fn bind(&self, region: &str, body: &str, status: u16, answer: &Bytes) {
        if !(200..300).contains(&status) {
            return;
        }
        let mut parameters = fields(body);
        let Some(at) = parameters.iter().position(|(k, _)| k == "ClientToken") else {
            return;
        };
        let (_, token) = parameters.remove(at);
        parameters.sort();
        self.bound
            .lock()
            .unwrap()
            .entry((region.to_owned(), token))
            .or_insert(First {
                parameters,
                status,
                body: answer.clone(),
            });
    }

    /// Requests refused with `IdempotentParameterMismatch` so far.
    pub fn mismatches(&self) -> usize {
        *self.mismatches.lock().unwrap()
    }

    /// Requests answered from memory so far.
    pub fn repeats(&self) -> usize {
        *self.repeats.lock().unwrap()
    }
}

/// An EC2 error answer (EC2's XML error format).
pub fn error_xml(code: &str, message: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>strict-front</RequestID></Response>",
        escape(code),
        escape(message)
    )
}

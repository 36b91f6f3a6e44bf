//! EC2 errors mapped to the core's classes. The SDK's retries are off: these classes are what
//! the controller's retry policy decides on (rate limited, capacity and transient are retried).

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use kasm_scale_core::traits::BackendError;

/// Error codes of throttling: EC2's `RequestLimitExceeded` (request and resource rate limits),
/// and the other codes the AWS SDKs treat as throttling.
const THROTTLING: [&str; 9] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "SlowDown",
];

/// EC2's answer to a client token reused with other parameters ("Ensuring idempotency" in the
/// EC2 API reference).
pub(crate) const IDEMPOTENT_PARAMETER_MISMATCH: &str = "IdempotentParameterMismatch";

/// Classifies an SDK error by EC2's error code (or the HTTP status, or the kind of failure).
pub(crate) fn classify<E>(err: SdkError<E, HttpResponse>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let five_xx = err
        .raw_response()
        .is_some_and(|r| r.status().is_server_error());
    let (code, message) = (
        err.code().map(str::to_owned),
        err.message().map(str::to_owned),
    );
    let text = match (&code, &message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => match &err {
            SdkError::TimeoutError(_) => "EC2 timed out".into(),
            SdkError::DispatchFailure(_) => {
                format!("cannot reach EC2: {}", causes(&err))
            }
            other => format!("EC2: {}", causes(other)),
        },
    };
    let throttled = code.as_deref().is_some_and(|c| THROTTLING.contains(&c))
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 429);
    if throttled {
        // EC2 sends no Retry-After: the controller's backoff decides the wait.
        return BackendError::RateLimited {
            message: text,
            retry_after: None,
        };
    }
    match code.as_deref() {
        Some("RequestTimeout" | "RequestTimeoutException") => BackendError::Transient(text),
        // Short of what this offering asks for: the next offering (another type or subnet)
        // may serve. `Unsupported` is EC2's answer for an instance type not offered in the
        // subnet's availability zone; `InsufficientFreeAddressesInSubnet` for a full subnet.
        Some(
            "InsufficientInstanceCapacity"
            | "InsufficientHostCapacity"
            | "InsufficientReservedInstanceCapacity"
            | "InsufficientFreeAddressesInSubnet"
            | "Unsupported",
        ) => BackendError::Capacity(text),
        Some("InstanceLimitExceeded" | "VcpuLimitExceeded" | "MaxSpotInstanceCountExceeded") => {
            BackendError::Quota(text)
        }
        Some("AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch") => {
            BackendError::Auth(text)
        }
        Some("UnauthorizedOperation" | "Blocked") => BackendError::Permission(text),
        // The client token was used by an earlier request with other parameters: that
        // request's instance exists (see `AwsProvider::create`).
        Some(IDEMPOTENT_PARAMETER_MISMATCH) => BackendError::Conflict(text),
        // Real EC2 refuses an id that is not of its form (`i-` and 8 or 17 hex digits) as
        // Malformed before looking anything up: such an id names no instance, so it is absent
        // like an unknown one (`get` is `None`, `destroy` is done).
        Some(c)
            if c.starts_with("InvalidInstanceID.NotFound")
                || c.starts_with("InvalidInstanceID.Malformed") =>
        {
            BackendError::NotFound(text)
        }
        Some(c)
            if c.starts_with("InvalidAMIID")
                || c.starts_with("InvalidParameter")
                || c == "MissingParameter" =>
        {
            BackendError::InvalidRequest(text)
        }
        _ if five_xx
            || matches!(
                err,
                SdkError::TimeoutError(_)
                    | SdkError::DispatchFailure(_)
                    | SdkError::ResponseError(_)
            ) =>
        {
            BackendError::Transient(text)
        }
        Some(_) => BackendError::InvalidRequest(text),
        None => BackendError::Transient(text),
    }
}

/// An error and its causes, `: `-separated, without repeating a cause's text.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        next = e.source();
    }
    text
}

//! Printing an error with its causes. Each module's error says what failed at its own
//! layer and keeps the cause as its `source()`; the top prints the whole chain once.

use std::error::Error;

/// `error: cause: cause's cause`, skipping a cause whose text its parent already shows.
pub fn chain(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the token file /etc/x")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_their_error() {
        let e = Outer(std::io::Error::other("permission denied"));
        assert_eq!(
            chain(&e),
            "cannot read the token file /etc/x: permission denied"
        );
    }
}

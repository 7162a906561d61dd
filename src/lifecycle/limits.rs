//! Process limits the daemon sets for itself at start.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit, so that a peer holding
/// connections runs into the listeners' caps long before the daemon runs out of
/// descriptors for its sinks, queries and state file. systemd starts services with a
/// soft limit of 1024 whatever `LimitNOFILE=` allows; the unit sets the hard limit.
/// Returns the soft limit in force afterwards (`None`: unlimited).
pub fn raise_open_files() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::debug!(
                from = ?limit.current,
                to = ?limit.maximum,
                "raised the open files limit to the hard limit"
            );
            limit.maximum
        }
        Err(e) => {
            tracing::warn!(
                soft = ?limit.current,
                hard = ?limit.maximum,
                "cannot raise the open files limit to the hard limit: {e}; keeping the soft limit"
            );
            limit.current
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum;
        assert_eq!(raise_open_files(), hard);
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
    }
}

//! Why someone reports a public persona (docs/api.md, "Reports"): a fixed set, stored with each
//! report and counted as the `persona_reports` metric.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Distinct reporters that hide a public persona, unless `REPORT_HIDE_THRESHOLD` says otherwise.
pub const DEFAULT_HIDE_THRESHOLD: u32 = 3;
/// Longest note a reporter may add, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// A report's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    Spam,
    Harassment,
    Hate,
    Sexual,
    SelfHarm,
    Impersonation,
    Other,
}

impl ReportReason {
    pub const ALL: [ReportReason; 7] = [
        ReportReason::Spam,
        ReportReason::Harassment,
        ReportReason::Hate,
        ReportReason::Sexual,
        ReportReason::SelfHarm,
        ReportReason::Impersonation,
        ReportReason::Other,
    ];

    /// The name stored in `persona_reports.reason` (and used in JSON and the metric).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportReason::Spam => "spam",
            ReportReason::Harassment => "harassment",
            ReportReason::Hate => "hate",
            ReportReason::Sexual => "sexual",
            ReportReason::SelfHarm => "self_harm",
            ReportReason::Impersonation => "impersonation",
            ReportReason::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_name_is_the_json_name() {
        for reason in ReportReason::ALL {
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(reason.as_str())
            );
        }
    }
}

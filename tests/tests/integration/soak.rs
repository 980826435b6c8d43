//! The saga soak at test size (the 10,000-message run is `cargo run --release -p bench -- soak`):
//! every message delivered one to three times, shuffled, with crashes at every step boundary,
//! through the real queues.

use integration_tests::spawn_app;

#[tokio::test]
async fn five_hundred_messages_delivered_one_to_three_times_with_crashes_leave_every_persona_ready_once(
) {
    let app = spawn_app().await;

    let report = app.soak(500).await;
    eprintln!(
        "soak: {:?} for {} deliveries",
        report.duration, report.deliveries
    );

    assert_eq!(report.personas, 250);
    assert_eq!(report.ready, 250, "{report:#?}");
    assert_eq!(report.lost, 0, "{report:#?}");
    assert!(report.failed.is_empty(), "{report:#?}");
    assert_eq!(report.duplicate_versions, 0);
    assert_eq!(report.card_objects, 750, "three cards per persona");
    assert_eq!(report.duplicate_cards, 0);
    assert_eq!(report.duplicate_ledger_entries, 0);
    assert_eq!(
        report.statuses_not_ready, 0,
        "every polled status says ready: {report:#?}"
    );
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    assert!(
        report.crashes >= 100 && report.deliveries > report.messages,
        "crashes and duplicates were injected: {report:#?}"
    );
}

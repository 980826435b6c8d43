//! `bench soak [messages]`: the saga soak (`devstack::soak`) at full size, 10,000 distinct saga
//! messages by default, against a PostgreSQL and emulator of its own.

use std::{collections::BTreeMap, time::Duration};

use devstack::{
    provision::{provision, provision_secrets},
    soak::{SoakOptions, SoakReport},
    stack::{local_defaults, local_other_workers, local_saga, Services},
    template::Template,
};

pub async fn run(messages: usize) -> anyhow::Result<()> {
    let services = Services::start().await?;
    let outcome = soak(&services, messages).await;
    services.stop();
    print(&outcome?);
    Ok(())
}

async fn soak(services: &Services, messages: usize) -> anyhow::Result<SoakReport> {
    let template = Template::parse(devstack::TEMPLATE)?;
    platform::db::migrate(&services.database_url).await?;
    let prefix = format!("soak{}", std::process::id());
    let mut resources = provision(&template, &services.aws, &prefix).await?;
    let mut overrides =
        BTreeMap::from([("DATABASE_URL".to_owned(), services.database_url.clone())]);
    let secrets = local_defaults(&mut overrides);
    provision_secrets(&services.aws, &prefix, &secrets, &mut resources).await?;
    let saga = local_saga(&template, &resources, &overrides, &services.aws).await?;
    let others = local_other_workers(&template, &resources, &overrides, &services.aws).await?;
    eprintln!("soak: {messages} messages ({} personas)", messages / 2);
    devstack::soak::run(
        &template,
        &resources,
        &services.aws,
        saga,
        others,
        SoakOptions {
            messages,
            seed: 14,
            timeout: Duration::from_secs(3_600),
        },
    )
    .await
}

fn print(report: &SoakReport) {
    println!("\n## Saga soak (local stack, real queues, offline LLM)\n");
    println!("| distinct messages | deliveries | injected crashes | personas | ready | failed | lost | duplicate versions | card objects | duplicate cards | ledger entries (duplicates) | statuses not ready | dead letters | duration |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {:.0} s |",
        report.messages,
        report.deliveries,
        report.crashes,
        report.personas,
        report.ready,
        report.failed.values().sum::<usize>(),
        report.lost,
        report.duplicate_versions,
        report.card_objects,
        report.duplicate_cards,
        report.ledger_entries,
        report.duplicate_ledger_entries,
        report.statuses_not_ready,
        report.dead_letters.len(),
        report.duration.as_secs_f64()
    );
    println!(
        "\nCopies still in flight at the end (left to return after the visibility timeout): {}",
        report.in_flight_at_end
    );
    for (code, count) in &report.failed {
        println!("- failed `{code}`: {count}");
    }
    for letter in &report.dead_letters {
        println!("- dead letter: {letter}");
    }
    println!(
        "\n{}",
        if report.clean() {
            "Clean: nothing lost, failed, duplicated or dead-lettered."
        } else {
            "NOT CLEAN: see above."
        }
    );
}

//! `template.yaml` passes cfn-lint, and declares what the foundation promises.

use std::{cell::RefCell, collections::BTreeSet};

use api::HttpApiConfig;
use chat::config::{ChatConfig, ChatMemoryConfig};
use devstack::template::Template;
use integration_tests::repo_path;
use platform::{ConfigError, FunctionConfig};
use saga::{RenderConfig, SweeperConfig, SynthesizeConfig};

#[test]
fn the_template_passes_cfn_lint() {
    let output = devstack::python::Tool::CfnLint
        .python()
        .unwrap()
        .args([
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
        ])
        .arg(repo_path("template.yaml"))
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_work_queue_redrives_to_a_dead_letter_queue_after_five_receives() {
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let queues = template.resources_of("AWS::SQS::Queue");

    for id in [
        "SynthesizeQueue",
        "RenderQueue",
        "SummarizeChatQueue",
        "ExportQueue",
        "EraseQueue",
    ] {
        let (_, properties) = queues.iter().find(|(q, _)| q == id).unwrap();
        let policy = &properties["RedrivePolicy"];
        assert_eq!(policy["maxReceiveCount"].as_i64(), Some(5), "{id}");
        assert!(
            properties["VisibilityTimeout"].as_i64().unwrap() >= 6 * 10,
            "{id}"
        );
    }
}

#[test]
fn every_sqs_worker_reports_partial_failures_and_its_queue_hides_messages_six_times_its_timeout() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    let template = Template::parse(&text).unwrap();
    let root: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let sources = template.sqs_event_sources().unwrap();
    let functions: Vec<&str> = sources.iter().map(|s| s.function.as_str()).collect();
    assert_eq!(
        functions,
        [
            "SynthesizeFunction",
            "RenderCardFunction",
            "ChatMemoryFunction",
            "ExportFunction",
            "EraseFunction"
        ]
    );

    for source in sources {
        assert!(source.report_batch_item_failures, "{}", source.function);
        assert!(source.maximum_concurrency.is_some(), "{}", source.function);
        let timeout = root["Resources"][source.function.as_str()]["Properties"]["Timeout"]
            .as_i64()
            .or_else(|| root["Globals"]["Function"]["Timeout"].as_i64())
            .unwrap();
        let visibility = root["Resources"][source.queue.as_str()]["Properties"]
            ["VisibilityTimeout"]
            .as_i64()
            .unwrap();
        // https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
        assert!(
            visibility >= 6 * timeout,
            "{}: {visibility} < 6 x {timeout}",
            source.queue
        );
    }
}

#[test]
fn every_function_is_arm64_on_provided_al2023_built_with_cargo_lambda() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    let template = Template::parse(&text).unwrap();
    let root: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let globals = &root["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(globals["Tracing"].as_str(), Some("Active"));

    let functions = template.resources_of("AWS::Serverless::Function");
    assert!(!functions.is_empty());
    for (id, _) in functions {
        assert_eq!(
            root["Resources"][id.as_str()]["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
    }
}

/// The variables `C` reads (with nothing set, so every optional read happens too) and the ones it
/// requires.
fn reads<C: FunctionConfig>() -> (BTreeSet<String>, BTreeSet<String>) {
    let read = RefCell::new(BTreeSet::new());
    let error: ConfigError = C::from_lookup(|name| {
        read.borrow_mut().insert(name.to_owned());
        None
    })
    .err()
    .expect("an empty environment is not enough");
    let required = error
        .problems
        .into_iter()
        .filter(|(_, problem)| problem == "is missing")
        .map(|(name, _)| name)
        .collect();
    (read.into_inner(), required)
}

#[test]
fn every_function_gets_exactly_the_variables_its_configuration_reads() {
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let functions = [
        ("HttpApiFunction", reads::<HttpApiConfig>()),
        ("SynthesizeFunction", reads::<SynthesizeConfig>()),
        ("RenderCardFunction", reads::<RenderConfig>()),
        ("SweeperFunction", reads::<SweeperConfig>()),
        ("ChatFunction", reads::<ChatConfig>()),
        ("ChatMemoryFunction", reads::<ChatMemoryConfig>()),
        ("ExportFunction", reads::<account::ExportConfig>()),
        ("EraseFunction", reads::<account::EraseConfig>()),
        (
            "MigrateFunction",
            reads::<platform::schema::MigrateConfig>(),
        ),
    ];
    let declared: BTreeSet<String> = template
        .resources_of("AWS::Serverless::Function")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        declared,
        functions.iter().map(|(f, _)| f.to_string()).collect(),
        "every function has its configuration type"
    );
    for (function, (read, required)) in functions {
        let given = template.function_variable_names(function);
        let unused: Vec<_> = given
            .iter()
            .filter(|name| !["RUST_LOG", "SECRET_ARNS"].contains(&name.as_str()))
            .filter(|name| !read.contains(*name))
            .collect();
        assert!(
            unused.is_empty(),
            "{function} is given {unused:?} but never reads them"
        );
        let provided: BTreeSet<String> = given
            .iter()
            .cloned()
            .chain(secret_variables_of(&template, function))
            .collect();
        let missing: Vec<_> = required.difference(&provided).collect();
        assert!(
            missing.is_empty(),
            "{function} requires {missing:?} but is not given them"
        );
    }
}

/// The template parameters of the secrets `function` may read, by its `SECRET_ARNS` (all the
/// branches of its conditions).
fn secret_parameters_of(template: &Template, function: &str) -> BTreeSet<String> {
    let text = format!(
        "{:?}",
        template.function_variable_value(function, "SECRET_ARNS")
    );
    platform::secrets::CONTRACT
        .iter()
        .filter(|(parameter, _)| text.contains(&format!("\"{parameter}\"")))
        .map(|(parameter, _)| parameter.to_string())
        .collect()
}

fn secret_variables_of(template: &Template, function: &str) -> Vec<String> {
    let parameters = secret_parameters_of(template, function);
    platform::secrets::CONTRACT
        .iter()
        .filter(|(parameter, _)| parameters.contains(*parameter))
        .flat_map(|(_, variables)| variables.iter().map(|v| v.to_string()))
        .collect()
}

#[test]
fn secrets_never_sit_in_a_functions_configuration_and_each_function_reads_only_its_own() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    assert!(!text.contains("{{resolve:"), "no dynamic secret references");
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let secret: BTreeSet<&str> = platform::secrets::secret_variables().collect();
    let expected = [
        (
            "HttpApiFunction",
            vec![
                "AnswerKeys",
                "DatabaseSecretArn",
                "IdentityKeys",
                "LlmApiKeySecretArn",
                "MessageKeys",
                "OpenAiApiKeySecretArn",
            ],
        ),
        (
            "ChatFunction",
            vec![
                "DatabaseSecretArn",
                "IdentityKeys",
                "LlmApiKeySecretArn",
                "MessageKeys",
                "OpenAiApiKeySecretArn",
            ],
        ),
        (
            "ChatMemoryFunction",
            vec![
                "DatabaseSecretArn",
                "LlmApiKeySecretArn",
                "MessageKeys",
                "OpenAiApiKeySecretArn",
            ],
        ),
        (
            "SynthesizeFunction",
            vec!["AnswerKeys", "DatabaseSecretArn", "LlmApiKeySecretArn"],
        ),
        ("RenderCardFunction", vec!["DatabaseSecretArn"]),
        ("SweeperFunction", vec!["DatabaseSecretArn"]),
        ("ExportFunction", vec!["DatabaseSecretArn", "MessageKeys"]),
        ("EraseFunction", vec!["DatabaseSecretArn", "IdentityKeys"]),
        ("MigrateFunction", vec!["DatabaseSecretArn"]),
    ];
    for (function, parameters) in expected {
        let given = template.function_variable_names(function);
        let exposed: Vec<_> = given
            .iter()
            .filter(|v| secret.contains(v.as_str()))
            .collect();
        assert!(
            exposed.is_empty(),
            "{function} is given {exposed:?} in its configuration"
        );
        let parameters: BTreeSet<String> = parameters.into_iter().map(str::to_owned).collect();
        assert_eq!(
            secret_parameters_of(&template, function),
            parameters,
            "{function}"
        );
        // Its role may read exactly those secrets.
        let policies = format!("{:?}", template.resource_property(function, "Policies"));
        let readable: BTreeSet<String> = platform::secrets::CONTRACT
            .iter()
            .filter(|(parameter, _)| policies.contains(&format!("\"{parameter}\"")))
            .map(|(parameter, _)| parameter.to_string())
            .collect();
        assert_eq!(readable, parameters, "{function}'s role");
    }
}

#[test]
fn every_function_has_a_log_group_with_a_retention() {
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let groups: Vec<String> = template
        .resources_of("AWS::Logs::LogGroup")
        .into_iter()
        .filter(|(_, properties)| properties.get("RetentionInDays").is_some())
        .filter_map(|(_, properties)| {
            let name = properties.get("LogGroupName")?;
            Some(format!("{name:?}"))
        })
        .collect();
    for (function, _) in template.resources_of("AWS::Serverless::Function") {
        assert!(
            groups
                .iter()
                .any(|group| group.contains(&format!("${{{function}}}"))),
            "{function} has no log group with a retention"
        );
    }
}

#[test]
fn the_saga_constants_match_the_queues_they_describe() {
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let queues = template.resources_of("AWS::SQS::Queue");
    let synthesize = &queues
        .iter()
        .find(|(id, _)| id == "SynthesizeQueue")
        .unwrap()
        .1;
    assert_eq!(
        Template::int_property(synthesize, "VisibilityTimeout"),
        Some(saga::synthesize::REENTRY_AFTER.as_secs() as i64),
        "a running synthesis attempt is taken over only after the visibility timeout"
    );
    let memory = &queues
        .iter()
        .find(|(id, _)| id == "SummarizeChatQueue")
        .unwrap()
        .1;
    assert_eq!(
        Template::int_property(memory, "VisibilityTimeout"),
        Some(chat::memory::LEASE.as_secs() as i64),
        "a memory job's lease is taken over only after the visibility timeout"
    );
    for (id, properties) in &queues {
        if let Some(redrive) = properties.get("RedrivePolicy") {
            assert_eq!(
                redrive.get("maxReceiveCount").and_then(|v| v.as_i64()),
                Some(i64::from(platform::worker::MAX_RECEIVES)),
                "{id}"
            );
        }
    }
}

#[test]
fn alarms_cover_every_function_and_every_dead_letter_queue_and_all_notify_one_topic() {
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let alarms: Vec<(String, String)> = template
        .resources_of("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, properties)| (id, format!("{properties:?}")))
        .collect();
    assert_eq!(
        template.resources_of("AWS::SNS::Topic").len(),
        1,
        "one topic"
    );
    for (id, alarm) in &alarms {
        assert!(alarm.contains("AlarmTopic"), "{id} notifies the topic");
    }
    let watches = |needles: &[&str]| {
        alarms
            .iter()
            .any(|(_, alarm)| needles.iter().all(|needle| alarm.contains(needle)))
    };
    for (function, _) in template.resources_of("AWS::Serverless::Function") {
        for metric in ["Errors", "Throttles"] {
            assert!(
                watches(&[
                    "AWS/Lambda",
                    &format!("\"{metric}\""),
                    &format!("\"{function}\"")
                ]),
                "{function} has no {metric} alarm"
            );
        }
    }
    let dead_letter_queues: Vec<String> = template
        .resources_of("AWS::SQS::Queue")
        .into_iter()
        .filter_map(|(_, properties)| {
            let target = properties
                .get("RedrivePolicy")?
                .get("deadLetterTargetArn")?;
            devstack::template::referenced_resource(target)
        })
        .collect();
    assert!(!dead_letter_queues.is_empty());
    for queue in dead_letter_queues {
        // Not only ApproximateNumberOfMessagesVisible: the sweeper drains DLQs every minute.
        assert!(
            watches(&["\"dead_letters\"", &format!("\"{queue}.QueueName\"")])
                || watches(&["\"dead_letters\"", &format!("\"{queue}\"")]),
            "{queue} has no alarm on dead-lettered messages"
        );
    }
    for needle in [
        "AWS/ApiGateway",
        "outbox_oldest_age_s",
        "rule_based_fallback",
    ] {
        assert!(watches(&[needle]), "no alarm on {needle}");
    }
}

#[test]
fn the_chat_stream_has_a_streaming_function_url_with_cors_and_an_output() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    let root: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let url = &root["Resources"]["ChatFunction"]["Properties"]["FunctionUrlConfig"];

    assert_eq!(url["InvokeMode"].as_str(), Some("RESPONSE_STREAM"));
    // Our own access token authenticates every chat request.
    assert_eq!(url["AuthType"].as_str(), Some("NONE"));
    assert!(matches!(
        url["Cors"]["AllowOrigins"],
        serde_yaml_ng::Value::Tagged(_)
    ));
    let headers: Vec<&str> = url["Cors"]["AllowHeaders"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    assert!(headers.contains(&"authorization") && headers.contains(&"idempotency-key"));
    assert!(matches!(
        root["Outputs"]["ChatStreamUrl"]["Value"],
        serde_yaml_ng::Value::Tagged(_)
    ));
}

#[test]
fn the_http_function_may_check_every_queue_it_sends_to_for_readiness() {
    // `GET /v1/health/ready` calls GetQueueAttributes on every queue the HTTP function is
    // configured with; the emulator enforces no IAM, so only the template can say it is allowed.
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let function = "HttpApiFunction";
    let queues: BTreeSet<String> = template
        .function_variable_names(function)
        .into_iter()
        .filter(|name| name.ends_with("_QUEUE_URL"))
        .map(|name| {
            let value = template.function_variable_value(function, &name).unwrap();
            devstack::template::referenced_resource(&value).unwrap()
        })
        .collect();
    assert!(queues.contains("SummarizeChatQueue"), "{queues:?}");

    let policies = template.resource_property(function, "Policies").unwrap();
    let mut readable = BTreeSet::new();
    for policy in policies.as_sequence().unwrap() {
        for statement in policy["Statement"].as_sequence().unwrap() {
            let actions = format!("{:?}", statement["Action"]);
            if !actions.contains("sqs:GetQueueAttributes") {
                continue;
            }
            let resources = match &statement["Resource"] {
                serde_yaml_ng::Value::Sequence(items) => items.clone(),
                single => vec![single.clone()],
            };
            readable.extend(
                resources
                    .iter()
                    .filter_map(devstack::template::referenced_resource),
            );
        }
    }
    for queue in &queues {
        assert!(
            readable.contains(queue),
            "{function} may not GetQueueAttributes on {queue}: its readiness would be 503"
        );
    }
}

#[test]
fn day_keys_live_in_a_table_no_backup_can_restore_and_the_main_table_keeps_its_recovery() {
    let template = Template::parse(devstack::TEMPLATE).unwrap();
    let tables = template.resources_of("AWS::DynamoDB::Table");
    let table = |id: &str| {
        tables
            .iter()
            .find(|(table, _)| table == id)
            .map(|(_, properties)| properties.clone())
            .unwrap()
    };
    let anonymity = table("AnonymityTable");
    assert_eq!(
        anonymity["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(false)
    );
    let tags = anonymity["Tags"].as_sequence().unwrap();
    assert!(tags.iter().any(
        |tag| tag["Key"].as_str() == Some("backup") && tag["Value"].as_str() == Some("exclude")
    ));
    assert_eq!(
        anonymity["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        table("Table")["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    let variable = template.function_variable_value("HttpApiFunction", "ANONYMITY_TABLE_NAME");
    assert!(
        format!("{variable:?}").contains("AnonymityTable"),
        "{variable:?}"
    );
}

#[test]
fn the_busiest_routes_have_throttles_of_their_own_and_exist_as_routes() {
    let text = std::fs::read_to_string(repo_path("template.yaml")).unwrap();
    let root: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let settings = root["Resources"]["HttpApi"]["Properties"]["RouteSettings"]
        .as_mapping()
        .unwrap();
    let events = root["Resources"]["HttpApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .unwrap();
    let routes: BTreeSet<String> = events
        .values()
        .filter_map(|event| {
            let properties = &event["Properties"];
            Some(format!(
                "{} {}",
                properties["Method"].as_str()?,
                properties["Path"].as_str()?
            ))
        })
        .collect();
    for route in [
        "GET /v1/personas/me/status",
        "POST /v1/surveys/{id}/responses",
        "POST /v1/personas/me/messages",
        "GET /p/{id}",
    ] {
        let limits = &settings[route];
        assert!(
            limits["ThrottlingRateLimit"].as_i64().unwrap() > 0,
            "{route}"
        );
        assert!(
            limits["ThrottlingBurstLimit"].as_i64().unwrap() > 0,
            "{route}"
        );
        assert!(routes.contains(route), "{route} is not a route of the API");
    }
    for route in settings.keys() {
        assert!(
            routes.contains(route.as_str().unwrap()),
            "{route:?} has settings but no route"
        );
    }
}

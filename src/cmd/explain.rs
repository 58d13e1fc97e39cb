//! `auditgate explain`: how one request would be classified and whether it
//! would be recorded, with no network.

use std::process::ExitCode;

use super::{Failure, load, runtime};
use crate::cli::ExplainArgs;
use crate::explain::Explainer;
use crate::policy;
use crate::resource::{Classifier, RulesFile};
use crate::store::Store;

pub(super) fn run(args: ExplainArgs) -> Result<ExitCode, Failure> {
    let flags: Vec<_> = args.rules.iter().map(|rules| ("rules", rules.clone())).collect();
    let config = load(args.config.as_deref(), &flags)?;
    let classifier = Classifier::new(RulesFile::load_dir(&config.rules).map_err(Failure::usage)?);
    let actions = policy::known_actions(classifier.custom_actions());
    let (configs, source) = match &args.database {
        Some(url) => {
            let configs = runtime(1)
                .block_on(Store::read_configurations(url))
                .map_err(|e| Failure::failed(format!("{url}: {e}")))?;
            (configs, url.clone())
        }
        None => {
            let configs = policy::load_seed_dir(&config.rules, &actions).map_err(Failure::usage)?;
            (configs, config.rules.join("audit.toml").display().to_string())
        }
    };
    let compiled = policy::Compiled::new(&configs);
    let file = config.rules.join("resources.toml");
    let explainer = Explainer {
        classifier: &classifier,
        rules_file: &file,
        method_override: config.method_override,
        actor: &config.actor,
        trusted: &config.trusted_proxies,
        policy: &compiled,
        policy_source: &source,
    };
    let text = explainer.explain(&args.method, &args.path, &args.headers, args.from).map_err(Failure::usage)?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

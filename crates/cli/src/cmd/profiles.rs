//! `linkwise profiles`: the built-in profiles.

use linkwise_discovery::profiles::PROFILES;

/// List the built-in profiles, one per line: name, then a description.
///
/// No header line, so scripts can loop: `for p in $(linkwise profiles | cut -d' ' -f1)`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise profiles\n  linkwise profiles -o json\n  for p in $(linkwise profiles | cut -d' ' -f1); do linkwise topo --source profile:$p; done"
)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.output {
        Output::Table => {
            let width = PROFILES.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            for (name, desc) in PROFILES {
                crate::emitln!("{name:<width$}  {desc}")?;
            }
        }
        Output::Json => {
            let v: Vec<serde_json::Value> = PROFILES
                .iter()
                .map(|(n, d)| serde_json::json!({"name": n, "description": d}))
                .collect();
            crate::emitln!("{}", serde_json::to_string_pretty(&v)?)?;
        }
    }
    Ok(())
}

//! `spice`: the driver of a SPICE run.
use clap::Parser;

#[derive(Parser)]
#[command(name = "spice", version, about = "Run SPICE iterations")]
enum Cli {
    /// Print the effective run configuration of a profile (defaults + profile + overrides).
    Config {
        /// Profile (pipelines/*.toml).
        #[arg(long, default_value = "pipelines/cpu.toml")]
        config: std::path::PathBuf,
        /// `section.key=value` overrides.
        #[arg(long = "set")]
        overrides: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Config { config, overrides } => {
            let cfg = spice_schemas::RunConfig::load(&config)?.with_overrides(&overrides)?;
            print!("{}", cfg.to_toml());
        }
    }
    Ok(())
}

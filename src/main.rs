//! The `brevdue` command: parses arguments, sets up logging, runs one command, exits with
//! 0 (success), 1 (runtime failure) or 2 (usage error).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "brevdue", version, about = "Bulk delivery gateway for Danish digital mail")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Recipient identifiers.
    Id {
        #[command(subcommand)]
        command: IdCommand,
    },
}

#[derive(Subcommand)]
enum IdCommand {
    /// Check CPR and CVR numbers: prints each one's kind and normalised form, or why it is
    /// invalid. Exits 1 if any is invalid.
    Check {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BREVDUE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("brevdue: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Id {
            command: IdCommand::Check { ids },
        } => {
            let all_valid = brevdue::cli::id_check::run(&ids, &mut std::io::stdout().lock())?;
            Ok(if all_valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

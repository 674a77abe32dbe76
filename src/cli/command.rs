//! The command tree (clap) and the dispatch of one command to its function in [`crate::cli`].
//! `main` parses with [`Cli`], sets up logging and calls [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides, QueueUrl, StoreUrl};
use crate::domain::{Cvr, SenderKind};

#[derive(Parser)]
#[command(
    name = "brevdue",
    version,
    about = "Bulk delivery gateway for Danish digital mail"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Commands that talk to a person at a terminal, whose output the gateway's own log lines
    /// would bury.
    pub fn talks_to_a_person(&self) -> bool {
        matches!(self.command, Command::Demo { .. } | Command::Loadgen(_))
    }
}

/// Where the gateway's data is; shared by every command that touches it.
#[derive(Args, Clone)]
struct DataArgs {
    /// Configuration file (TOML); flags and BREVDUE_* variables override it.
    #[arg(long, env = "BREVDUE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./brevdue-data].
    #[arg(long, env = "BREVDUE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL [default: sqlite://<data-dir>/brevdue.db].
    #[arg(long, env = "BREVDUE_STORE")]
    store: Option<StoreUrl>,
    /// Queue URL [default: embedded://<data-dir>/queue.db].
    #[arg(long, env = "BREVDUE_QUEUE")]
    queue: Option<QueueUrl>,
}

impl DataArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            queue: self.queue.clone(),
            ..Overrides::default()
        }
    }

    /// The configuration file with these flags over it, validated.
    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref(), self.overrides())
    }
}

#[derive(Args)]
struct SenderArgs {
    /// Directory with ca.pem, sender.pem and sender.key (from `brevdue senders add`).
    #[arg(long, env = "BREVDUE_CERT_DIR")]
    cert_dir: PathBuf,
    /// Gateway address.
    #[arg(
        long,
        env = "BREVDUE_SERVER",
        default_value = "https://127.0.0.1:50051"
    )]
    server: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the one-command demo: a data directory, a generated registry, two senders, a gateway
    /// and a streamed batch of letters with a summary.
    Demo {
        #[arg(long, default_value = "./brevdue-demo")]
        data_dir: PathBuf,
        /// Letters in the demo batch.
        #[arg(long, default_value_t = 10_000)]
        letters: usize,
        /// Keep the gateway running after the batch (Ctrl-C stops it).
        #[arg(long)]
        keep_running: bool,
    },
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// gRPC address [default: 127.0.0.1:50051].
        #[arg(long, env = "BREVDUE_LISTEN")]
        listen: Option<SocketAddr>,
        /// Operator HTTP address [default: 127.0.0.1:9180].
        #[arg(long, env = "BREVDUE_ADMIN_LISTEN")]
        admin_listen: Option<SocketAddr>,
        /// File with the token /dashboard and /api/* ask for [default: none, pages open].
        #[arg(long, env = "BREVDUE_ADMIN_TOKEN_FILE")]
        admin_token_file: Option<PathBuf>,
    },
    /// Onboard and manage senders.
    Senders {
        #[command(subcommand)]
        command: SendersCommand,
    },
    /// Operator identities: certificates for the operator services and `brevdue ops`.
    Operators {
        #[command(subcommand)]
        command: OperatorsCommand,
    },
    /// Act as an operator over the network: dead letters, bulk retry/cancel/purge jobs, route
    /// holds, sender drill-down and suspension, the audit trail (with --server and --cert-dir).
    Ops(super::ops::OpsArgs),
    /// Import the recipient registry, or apply changes to it.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Submit a batch (JSON lines) and write a receipt report.
    Send {
        #[command(flatten)]
        sender: SenderArgs,
        /// A batch file, or a directory of them.
        input: PathBuf,
        /// Receipt report (CSV) [default: <input>.receipts.csv].
        #[arg(long)]
        report: Option<PathBuf>,
        /// The batch id for letters whose line names none [default: a generated one, printed].
        #[arg(long = "batch-id")]
        batch_id: Option<String>,
        /// The gateway's operator HTTP address, for the dashboard link [default: the gateway
        /// host, port 9180].
        #[arg(long = "admin-url", env = "BREVDUE_ADMIN_URL")]
        admin: Option<String>,
    },
    /// Show the state of one of your letters (by letter id or message uuid).
    Status {
        #[command(flatten)]
        sender: SenderArgs,
        id: String,
    },
    /// Your letters' events as JSON lines, from a cursor; the last cursor is printed on exit.
    Events {
        #[command(flatten)]
        sender: SenderArgs,
        /// Resume after this cursor (empty: from the oldest event kept).
        #[arg(long, default_value = "")]
        after: String,
        /// Keep the stream open and print new events as they happen.
        #[arg(long)]
        follow: bool,
        /// Only DELIVERED, PRINT_SPOOLED, FAILED and CANCELLED.
        #[arg(long)]
        terminal_only: bool,
    },
    /// A batch of your letters: its counts, or recall what is not yet delivered.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
    /// Recall one of your letters before it is delivered (by letter id or message uuid).
    Cancel {
        #[command(flatten)]
        sender: SenderArgs,
        id: String,
    },
    /// Your letters, newest first.
    Letters {
        #[command(subcommand)]
        command: LettersCommand,
    },
    /// Recipient identifiers.
    Id {
        #[command(subcommand)]
        command: IdCommand,
    },
    /// Key-encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Letters whose delivery retries are spent.
    Dead {
        #[command(subcommand)]
        command: DeadCommand,
    },
    /// Ask a gateway's gRPC health service whether it serves (exit 0) or not (exit 1).
    Health {
        #[arg(
            long,
            env = "BREVDUE_SERVER",
            default_value = "https://127.0.0.1:50051"
        )]
        server: String,
        /// The gateway CA certificate (pki/ca.pem in the data directory).
        #[arg(long, env = "BREVDUE_CA")]
        ca: PathBuf,
    },
    /// Measure durable end-to-end throughput against the raw ceilings of this machine, or
    /// (`--scenario flood`) urgent letters' latency while one sender floods the gateway.
    Loadgen(Box<super::loadgen::LoadgenArgs>),
}

#[derive(Subcommand)]
enum BatchCommand {
    /// Counts by state, outcome and reason.
    Status {
        #[command(flatten)]
        sender: SenderArgs,
        id: String,
    },
    /// Recall every letter of the batch not yet delivered.
    Cancel {
        #[command(flatten)]
        sender: SenderArgs,
        id: String,
    },
}

#[derive(Subcommand)]
enum LettersCommand {
    /// One line per letter: letter id, message uuid, state, accepted at, batch.
    List {
        #[command(flatten)]
        sender: SenderArgs,
        #[arg(long)]
        batch: Option<String>,
        /// ACCEPTED, SCHEDULED, DELIVERED, PRINT_SPOOLED, FAILED or CANCELLED.
        #[arg(long)]
        state: Option<String>,
    },
}

#[derive(Subcommand)]
enum SendersCommand {
    /// Register a sender and write its client certificate, key and the gateway CA into --out.
    Add {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        cvr: Cvr,
        #[arg(long)]
        name: String,
        #[arg(long)]
        kind: SenderKind,
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue another certificate for a registered sender.
    Reissue {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        cvr: Cvr,
        #[arg(long)]
        out: PathBuf,
        /// Revoke every older certificate of the sender in the same step (renewal).
        #[arg(long)]
        revoke_old: bool,
    },
    /// Revoke a sender's certificate: running gateways refuse it within the refresh interval.
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        cvr: Cvr,
        /// The certificate's SHA-256 fingerprint, as `senders list` shows it.
        #[arg(long, value_parser = parse_fingerprint_arg, required_unless_present = "all_but_newest", conflicts_with = "all_but_newest")]
        fingerprint: Option<[u8; 32]>,
        /// Revoke every certificate of the sender but the newest.
        #[arg(long)]
        all_but_newest: bool,
    },
    /// Refuse a sender's calls until resumed.
    Suspend {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        cvr: Cvr,
    },
    /// Let a suspended sender send again.
    Resume {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        cvr: Cvr,
    },
    /// Set a sender's share and limits; running gateways apply them within seconds. Flags not
    /// given keep their value; `none` removes a limit.
    Limits {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        cvr: Cvr,
        /// Share of capacity against other active senders (1 to 1000; default 1).
        #[arg(long)]
        weight: Option<u32>,
        /// Sustained letters per second, or `none`.
        #[arg(long, value_parser = super::admin::parse_count_limit)]
        rate: Option<Option<u32>>,
        /// Letters allowed at once above the rate (default: one second of the rate), or `none`.
        #[arg(long, value_parser = super::admin::parse_count_limit)]
        burst: Option<Option<u32>>,
        /// Letters in the pipeline at once over all the sender's connections, or `none`.
        #[arg(long, value_parser = super::admin::parse_count_limit)]
        in_flight: Option<Option<u32>>,
        /// Largest letter, e.g. `5MB`, or `none` for the gateway's limit.
        #[arg(long, value_parser = super::admin::parse_size_limit)]
        max_size: Option<Option<u64>>,
    },
    /// List senders with their state, certificates and limits.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum OperatorsCommand {
    /// Issue an operator certificate and write it, its key and the gateway CA into --out.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// The operator's name, as the audit trail shows it.
        #[arg(long)]
        name: crate::domain::OperatorName,
        #[arg(long)]
        out: PathBuf,
        /// How long the certificate is valid, e.g. `90days`.
        #[arg(long, default_value = "90days", value_parser = humantime::parse_duration)]
        valid_for: std::time::Duration,
    },
    /// List operator certificates with their state.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke an operator's certificate: running gateways refuse it within the refresh interval.
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        #[arg(
            long,
            required_unless_present = "fingerprint",
            conflicts_with = "fingerprint"
        )]
        name: Option<crate::domain::OperatorName>,
        /// One certificate, by the fingerprint `operators list` shows.
        #[arg(long, value_parser = parse_fingerprint_arg)]
        fingerprint: Option<[u8; 32]>,
    },
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Import recipients (id_type,id,status) and subscriptions (recipient_id,sender_cvr).
    Import {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        recipients: PathBuf,
        #[arg(long)]
        subscriptions: Option<PathBuf>,
    },
    /// Apply registry changes: JSON lines of subscribe, unsubscribe, status or remove changes.
    /// All or nothing; running gateways route by them within seconds.
    Apply {
        #[command(flatten)]
        data: DataArgs,
        /// Send the changes to this running gateway (https://host:port) as an operator,
        /// instead of writing them to the store directly.
        #[arg(long, requires = "cert_dir")]
        server: Option<String>,
        /// The operator's certificate directory (from `brevdue operators add`), with --server.
        #[arg(long, requires = "server")]
        cert_dir: Option<PathBuf>,
        /// The change file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum IdCommand {
    /// Check CPR and CVR numbers; exits 1 if any is invalid.
    Check {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a key-encryption key and make it active.
    Rotate {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum DeadCommand {
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Queue a dead letter for delivery again.
    Retry {
        #[command(flatten)]
        data: DataArgs,
        letter_id: String,
    },
    /// Drop a dead letter for good.
    Purge {
        #[command(flatten)]
        data: DataArgs,
        letter_id: String,
    },
}

/// Runs one command. `shutdown` completes when the process is asked to stop (SIGTERM, Ctrl-C);
/// only `serve` waits for it.
pub async fn run(
    cli: Cli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ExitCode> {
    match cli.command {
        Command::Demo {
            data_dir,
            letters,
            keep_running,
        } => super::demo::run(&data_dir, letters, keep_running).await?,
        Command::Serve {
            data,
            listen,
            admin_listen,
            admin_token_file,
        } => {
            let config = Config::load(
                data.config.as_deref(),
                Overrides {
                    listen,
                    admin_listen,
                    admin_token_file,
                    ..data.overrides()
                },
            )?;
            let grpc = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let admin = tokio::net::TcpListener::bind(config.admin_listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.admin_listen))?;
            eprintln!(
                "brevdue gateway on https://{} (dashboard on http://{}/dashboard), data in {}",
                grpc.local_addr().unwrap_or(config.listen),
                admin.local_addr().unwrap_or(config.admin_listen),
                config.data_dir.display()
            );
            crate::server::run(config, grpc, admin, shutdown).await?;
        }
        Command::Senders { command } => match command {
            SendersCommand::Add {
                data,
                cvr,
                name,
                kind,
                out,
            } => super::admin::senders_add(&data.load()?, cvr, &name, kind, &out).await?,
            SendersCommand::Reissue {
                data,
                cvr,
                out,
                revoke_old,
            } => super::admin::senders_reissue(&data.load()?, cvr, &out, revoke_old).await?,
            SendersCommand::Revoke {
                data,
                cvr,
                fingerprint,
                all_but_newest,
            } => {
                let which = match fingerprint {
                    Some(fp) if !all_but_newest => crate::store::Revocation::Fingerprint(fp),
                    _ => crate::store::Revocation::AllButNewest,
                };
                super::admin::senders_revoke(&data.load()?, cvr, which).await?
            }
            SendersCommand::Suspend { data, cvr } => {
                super::admin::senders_suspend(&data.load()?, cvr, true).await?
            }
            SendersCommand::Resume { data, cvr } => {
                super::admin::senders_suspend(&data.load()?, cvr, false).await?
            }
            SendersCommand::Limits {
                data,
                cvr,
                weight,
                rate,
                burst,
                in_flight,
                max_size,
            } => {
                let change = super::admin::LimitsChange {
                    weight,
                    rate,
                    burst,
                    in_flight,
                    max_size,
                };
                super::admin::senders_limits(&data.load()?, cvr, change).await?
            }
            SendersCommand::List { data } => super::admin::senders_list(&data.load()?).await?,
        },
        Command::Operators { command } => match command {
            OperatorsCommand::Add {
                data,
                name,
                out,
                valid_for,
            } => super::operators::add(&data.load()?, &name, &out, valid_for).await?,
            OperatorsCommand::List { data } => super::operators::list(&data.load()?).await?,
            OperatorsCommand::Revoke {
                data,
                name,
                fingerprint,
            } => {
                let which = match (name, fingerprint) {
                    (Some(n), _) => crate::store::OperatorRevocation::Name(n),
                    (None, Some(fp)) => crate::store::OperatorRevocation::Fingerprint(fp),
                    // clap requires one of the two.
                    (None, None) => return Ok(ExitCode::from(2)),
                };
                super::operators::revoke(&data.load()?, which).await?
            }
        },
        Command::Registry {
            command:
                RegistryCommand::Import {
                    data,
                    recipients,
                    subscriptions,
                },
        } => {
            super::registry::registry_import(&data.load()?, &recipients, subscriptions.as_deref())
                .await?
        }
        Command::Registry {
            command:
                RegistryCommand::Apply {
                    data,
                    server,
                    cert_dir,
                    file,
                },
        } => match (server, cert_dir) {
            (Some(server), Some(cert_dir)) => {
                super::registry::registry_apply_remote(&server, &cert_dir, &file).await?
            }
            _ => super::registry::registry_apply(&data.load()?, &file).await?,
        },
        Command::Send {
            sender,
            input,
            report,
            batch_id,
            admin,
        } => {
            let batch = match batch_id.map(|b| b.parse::<crate::domain::BatchId>()) {
                Some(Ok(b)) => b,
                // A bad flag value is a usage error (exit 2), like clap's own.
                Some(Err(e)) => {
                    eprintln!("error: --batch-id: {e}");
                    return Ok(ExitCode::from(2));
                }
                None => crate::domain::BatchId::generate(),
            };
            let report = report.unwrap_or_else(|| {
                let mut p = input.clone().into_os_string();
                p.push(".receipts.csv");
                PathBuf::from(p)
            });
            let mut client = super::client::connect(&sender.server, &sender.cert_dir).await?;
            println!("batch id: {}", batch.as_str());
            let summary = super::send::send(&mut client, &input, &report, &batch).await?;
            summary.print();
            println!("receipt report: {}", report.display());
            println!(
                "dashboard:      {}",
                super::send::dashboard_url(&sender.server, admin.as_deref())
            );
            if !summary.all_sent() {
                eprintln!(
                    "{} lines of {} could not be sent (see above)",
                    summary.not_sent(),
                    input.display()
                );
                return Ok(ExitCode::from(1));
            }
        }
        Command::Status { sender, id } => {
            let mut client = super::client::connect(&sender.server, &sender.cert_dir).await?;
            super::status::status(&mut client, &id).await?;
        }
        Command::Events {
            sender,
            after,
            follow,
            terminal_only,
        } => {
            let mut client = super::client::connect(&sender.server, &sender.cert_dir).await?;
            super::follow::events(&mut client, &after, follow, terminal_only).await?;
        }
        Command::Batch {
            command: BatchCommand::Status { sender, id },
        } => {
            let mut client = super::client::connect(&sender.server, &sender.cert_dir).await?;
            super::follow::batch_status(&mut client, &id).await?;
        }
        Command::Batch {
            command: BatchCommand::Cancel { sender, id },
        } => {
            let mut client = super::client::connect(&sender.server, &sender.cert_dir).await?;
            super::follow::batch_cancel(&mut client, &id).await?;
        }
        Command::Cancel { sender, id } => {
            let mut client = super::client::connect(&sender.server, &sender.cert_dir).await?;
            super::follow::cancel(&mut client, &id).await?;
        }
        Command::Letters {
            command:
                LettersCommand::List {
                    sender,
                    batch,
                    state,
                },
        } => {
            let mut client = super::client::connect(&sender.server, &sender.cert_dir).await?;
            super::follow::list(&mut client, batch, state).await?;
        }
        Command::Id {
            command: IdCommand::Check { ids },
        } => {
            let all_valid = super::id_check::run(&ids, &mut std::io::stdout().lock())?;
            if !all_valid {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Keys {
            command: KeysCommand::Rotate { data },
        } => super::admin::keys_rotate(&data.load()?)?,
        Command::Dead { command } => match command {
            DeadCommand::List { data } => {
                super::admin::dead_letters(&data.load()?, super::admin::DeadAction::List).await?
            }
            DeadCommand::Retry { data, letter_id } => {
                super::admin::dead_letters(
                    &data.load()?,
                    super::admin::DeadAction::Retry(letter_id),
                )
                .await?
            }
            DeadCommand::Purge { data, letter_id } => {
                super::admin::dead_letters(
                    &data.load()?,
                    super::admin::DeadAction::Purge(letter_id),
                )
                .await?
            }
        },
        Command::Loadgen(args) => super::loadgen::run(*args).await?,
        Command::Ops(args) => return super::ops::run(args).await,
        Command::Health { server, ca } => super::health::check(&server, &ca).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_fingerprint_arg(s: &str) -> Result<[u8; 32], String> {
    crate::pki::parse_fingerprint(s)
        .ok_or_else(|| format!("{s:?} is not a certificate fingerprint (64 hex digits)"))
}

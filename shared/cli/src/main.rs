//! `feen`: the command line. `feen serve` runs every Feen function in one process (embedded
//! SQLite and in-process counters by default; PostgreSQL and Redis when configured);
//! `feen migrate` applies the database migrations; `feen jobs` runs the periodic jobs once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use feen_native::config::Settings;

#[derive(Parser)]
#[command(
    name = "feen",
    version,
    about = "Share AI-provider API keys without sharing the keys"
)]
struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, env = "FEEN_LOG_FORMAT", default_value = "text", global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Feen: every function in one process.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "FEEN_LISTEN", default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Where the embedded database and the generated secrets live.
        #[arg(long, env = "FEEN_DATA_DIR", default_value = "feen-data")]
        data_dir: PathBuf,
    },
    /// Run the periodic jobs once (for a scheduler of your own; `feen serve` runs them hourly)
    /// and print what they did as JSON.
    Jobs {
        /// Where the embedded database lives (when DATABASE_URL is not set).
        #[arg(long, env = "FEEN_DATA_DIR", default_value = "feen-data")]
        data_dir: PathBuf,
    },
    /// Apply the database migrations (to DATABASE_URL, or the embedded database) and exit.
    Migrate {
        /// Where the embedded database lives (when DATABASE_URL is not set).
        #[arg(long, env = "FEEN_DATA_DIR", default_value = "feen-data")]
        data_dir: PathBuf,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn jobs(settings: &Settings, data_dir: &std::path::Path) -> Result<(), String> {
    let (db, _) = feen_native::server::open_db(settings, data_dir).await?;
    // The key ring, when this deployment has one (never created here), re-seals old keys.
    let configured =
        settings.keyring.is_some() || feen_native::config::secrets_path(data_dir).exists();
    let config = if configured {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        Some(settings.config(data_dir, listen, &feen_native::system::OsRng)?)
    } else {
        None
    };
    if let Some(config) = &config {
        feen_native::server::check_keyring(db.as_ref(), &config.keyring).await?;
    }
    // The mail API, when configured, whether or not this deployment has a key ring.
    let mail = settings.mail()?;
    let http = feen_native::outbound::ReqwestHttp::new(settings.allow_private_upstreams)
        .map_err(|e| e.to_string())?;
    let mail = mail
        .as_ref()
        .map(|m| (&http as &dyn feen_core::ports::HttpClient, m));
    let report = feen_native::server::run_jobs(db.as_ref(), config.as_ref(), None, mail).await?;
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    use std::io::Write;
    writeln!(std::io::stdout(), "{json}").map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { listen, data_dir } => {
            feen_native::server::serve(settings, listen, data_dir, shutdown_signal()).await
        }
        Command::Jobs { data_dir } => jobs(&settings, &data_dir).await,
        Command::Migrate { data_dir } => feen_native::server::open_db(&settings, &data_dir)
            .await
            .map(|(_, name)| {
                tracing::info!(database = %name, "migrations applied");
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

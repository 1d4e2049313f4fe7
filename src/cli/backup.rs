//! `spoc backup` and `spoc restore`.
//!
//! A backup is taken by the running service (`BackupService.CreateBackup`,
//! consistent while writes go on) and streamed here; the file is written
//! under a temporary name, checked (version, framing, checksum) and only
//! then renamed, so `--out` never holds a partial snapshot. A restore is
//! offline: it checks the whole file first and writes only into an empty
//! folder, which `spoc serve --data-dir` then opens.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::client::{BoxError, ClientArgs, Service, describe, runtime};
use crate::api::pb;
use crate::store::backup::{restore_snapshot, sync_parent, verify_snapshot};

/// Options of `spoc backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the snapshot file (replaced if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Where the service listens.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `spoc restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot file written by `spoc backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// The data folder to create; must be missing or empty.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// Streams a snapshot from the service into `--out`.
pub fn backup(args: BackupArgs) -> Result<(), BoxError> {
    let mut temp = args.out.clone().into_os_string();
    temp.push(".partial");
    let temp = PathBuf::from(temp);
    let outcome = runtime()?.block_on(async {
        // Ctrl-C or SIGTERM while the snapshot streams: the partial file
        // is removed below like on any other failure.
        tokio::select! {
            outcome = receive(&args, &temp) => outcome,
            () = interrupted() => Err("backup interrupted by a signal".into()),
        }
    });
    if let Err(err) = outcome {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    let summary = match verify_snapshot(&temp) {
        Ok(summary) => summary,
        Err(err) => {
            let _ = std::fs::remove_file(&temp);
            return Err(err.into());
        }
    };
    if let Err(err) = std::fs::rename(&temp, &args.out).and_then(|()| sync_parent(&args.out)) {
        let _ = std::fs::remove_file(&temp);
        return Err(format!("cannot move the snapshot to {}: {err}", args.out.display()).into());
    }
    println!(
        "wrote {} ({} bytes, {} entries in {} tables, {} files)",
        args.out.display(),
        summary.bytes,
        summary.entries,
        summary.trees,
        summary.files
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Streams the snapshot into `temp` and syncs it.
async fn receive(args: &BackupArgs, temp: &std::path::Path) -> Result<(), BoxError> {
    let mut client = Service::connect(&args.client).await?.backup();
    let mut stream = client
        .create_backup(pb::CreateBackupRequest {})
        .await
        .map_err(|s| describe("backup refused", &s))?
        .into_inner();
    let mut file = std::io::BufWriter::new(crate::store::backup::private_file(temp)?);
    let (mut received, mut expected) = (0u64, None);
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| describe("backup interrupted", &s))?
    {
        expected = Some(chunk.total_bytes as u64);
        received += chunk.data.len() as u64;
        file.write_all(&chunk.data)?;
    }
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    if expected != Some(received) {
        return Err(format!("backup incomplete: received {received} bytes of {expected:?}").into());
    }
    Ok(())
}

/// Restores `--from` into `--data-dir`.
pub fn restore(args: RestoreArgs) -> Result<(), BoxError> {
    let summary = restore_snapshot(&args.from, &args.data_dir)?;
    println!(
        "restored {} entries in {} tables and {} files into {}; start it with: spoc serve --data-dir {}",
        summary.entries,
        summary.trees,
        summary.files,
        args.data_dir.display(),
        args.data_dir.display()
    );
    Ok(())
}
